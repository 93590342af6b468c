// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)

// tcpproxy is a TCP proxy written the way most Go TCP proxies are: Accept, Dial the
// backend, one io.Copy per direction. io.Copy between two *net.TCPConn calls
// (*TCPConn).ReadFrom, which on Linux moves the bytes with splice() (socket -> pipe ->
// socket): the reading side is tcp_splice_read(), not recvmsg(). Each direction's EOF
// is passed on as a half-close (CloseWrite), so request/response protocols and
// lltraffic's duplex streams work through it.
//
//	tcpproxy -listen 127.0.0.1:7720 -backend 127.0.0.1:7721
package main

import (
	"flag"
	"io"
	"log"
	"net"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7720", "address to listen on")
	backend := flag.String("backend", "127.0.0.1:7721", "address to connect each client to")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go proxy(c.(*net.TCPConn), *backend)
	}
}

func proxy(client *net.TCPConn, backend string) {
	defer client.Close()
	c, err := net.Dial("tcp", backend)
	if err != nil {
		log.Print(err)
		return
	}
	server := c.(*net.TCPConn)
	defer server.Close()
	up := make(chan int64)
	go func() {
		n, err := io.Copy(server, client)
		if err != nil {
			log.Printf("%v -> %v: %v", client.RemoteAddr(), backend, err)
		}
		server.CloseWrite()
		up <- n
	}()
	down, err := io.Copy(client, server)
	if err != nil {
		log.Printf("%v -> %v: %v", backend, client.RemoteAddr(), err)
	}
	client.CloseWrite()
	log.Printf("%v: %d bytes up, %d bytes down", client.RemoteAddr(), <-up, down)
}
