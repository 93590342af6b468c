// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)

// revproxy is an HTTP reverse proxy written the usual way: httputil.ReverseProxy in
// front of one backend, served by net/http. It reads its sockets with read() (through
// bufio and its own copy buffer, never splice), on non-blocking sockets behind Go's
// netpoller (epoll).
//
//	revproxy -listen 127.0.0.1:7730 -backend http://127.0.0.1:7731
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7730", "address to listen on")
	backend := flag.String("backend", "http://127.0.0.1:7731", "URL of the backend")
	flag.Parse()
	u, err := url.Parse(*backend)
	if err != nil {
		log.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// Never an HTTP proxy from the environment: the backend is on this host.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	rp.Transport = t
	log.Fatal(http.ListenAndServe(*listen, rp))
}
