#!/usr/bin/env node
// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Offline checks of the deployment files, for tests/integration.sh (no
 * cluster, no Docker engine here). Uses the npm packages pinned in
 * package-lock.json (`make deps`).
 *
 *   check-deploy.js k8s DIR [--config-out FILE]
 *       Every object of every manifest in DIR is validated against the
 *       Kubernetes API schemas kubernetes-models carries, twice:
 *       - its JSON-schema validators (ajv, generated from the Kubernetes
 *         OpenAPI spec): types, required fields, enums, formats;
 *       - its TypeScript interfaces of the same spec, through tsc's
 *         excess-property check: unknown fields (a misspelt key is silently
 *         dropped by the API server's non-strict decoding, or refused by
 *         kubectl's strict field validation).
 *       Then kustomization.yaml's resources must be exactly the manifests,
 *       and the objects must fit together (namespace, ConfigMap name,
 *       selector, probe port, metrics port, update strategy). With
 *       --config-out, the ConfigMap's looplessd.conf is written to FILE for
 *       `looplessd --check`.
 *   check-deploy.js dockerfile FILE PKG...
 *       dockerfile-utils' linter (the one behind VS Code's Dockerfile
 *       support) finds nothing, and the structure holds: multi-stage from
 *       Debian 12, `make install` in the build stage, the runtime stage
 *       installs exactly the Debian packages PKG... (those of the libraries
 *       the binaries link), ENTRYPOINT /usr/sbin/looplessd.
 *
 * Prints one line per check; exits 1 on the first failing file with every
 * problem found in it.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const problems = [];
const fail = (msg) => problems.push(msg);
const ok = (msg) => console.log(`ok  ${msg}`);

function finish() {
	if (!problems.length)
		return;
	for (const p of problems)
		console.error(`FAIL ${p}`);
	process.exit(1);
}

/* kubernetes-models module and interface for an object. */
const KINDS = {
	'v1/Namespace': ['kubernetes-models/v1/Namespace', 'Namespace', 'INamespace'],
	'v1/ConfigMap': ['kubernetes-models/v1/ConfigMap', 'ConfigMap', 'IConfigMap'],
	'v1/ServiceAccount': ['kubernetes-models/v1/ServiceAccount', 'ServiceAccount', 'IServiceAccount'],
	'v1/Service': ['kubernetes-models/v1/Service', 'Service', 'IService'],
	'apps/v1/DaemonSet': ['kubernetes-models/apps/v1/DaemonSet', 'DaemonSet', 'IDaemonSet'],
};

function loadManifests(dir) {
	const YAML = require('yaml');
	const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
	const objects = [];
	let kustomization = null;

	for (const f of files) {
		const text = fs.readFileSync(path.join(dir, f), 'utf8');
		const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
		for (const doc of docs) {
			for (const e of doc.errors)
				fail(`${f}: ${e.message}`);
			const obj = doc.toJS();
			if (obj === null || obj === undefined)
				continue;
			if (f === 'kustomization.yaml')
				kustomization = obj;
			else
				objects.push({ file: f, obj });
		}
	}
	return { files, objects, kustomization };
}

function name(o) {
	return `${o.file}: ${o.obj.kind}/${o.obj.metadata && o.obj.metadata.name}`;
}

function schemaCheck(objects) {
	for (const o of objects) {
		const key = `${o.obj.apiVersion}/${o.obj.kind}`;
		const k = KINDS[key];
		if (!k) {
			fail(`${name(o)}: no schema for ${key} in this check (add it to KINDS)`);
			continue;
		}
		const Model = require(k[0])[k[1]];
		try {
			new Model(o.obj).validate();
			ok(`${name(o)}: valid against the ${key} schema`);
		} catch (e) {
			const details = (e.errors || [])
				.map((x) => `${x.instancePath || '/'} ${x.message}`)
				.join('; ');
			fail(`${name(o)}: ${details || e.message}`);
		}
	}
}

/* tsc over `const x: IDaemonSet = {...}`: excess properties are unknown fields. */
function strictFieldCheck(objects) {
	const ts = require('typescript');
	const root = path.resolve(__dirname, '..');
	const virt = path.join(root, '__manifests__.ts');
	const where = [];
	let src = '';

	objects.forEach((o, i) => {
		const k = KINDS[`${o.obj.apiVersion}/${o.obj.kind}`];
		if (!k)
			return;
		src += `import type { ${k[2]} as T${i} } from ${JSON.stringify(k[0])};\n`;
		src += `export const o${i}: T${i} = ${JSON.stringify(o.obj)};\n`;
		where.push(name(o));
	});
	const options = {
		strict: true,
		noEmit: true,
		skipLibCheck: true,
		module: ts.ModuleKind.CommonJS,
		moduleResolution: ts.ModuleResolutionKind.Node10,
		target: ts.ScriptTarget.ES2020,
		types: [],
	};
	const host = ts.createCompilerHost(options);
	const readFile = host.readFile.bind(host);
	const getSourceFile = host.getSourceFile.bind(host);
	host.fileExists = ((exists) => (f) => f === virt || exists(f))(host.fileExists.bind(host));
	host.readFile = (f) => (f === virt ? src : readFile(f));
	host.getSourceFile = (f, lang, ...rest) =>
		f === virt ? ts.createSourceFile(f, src, lang) : getSourceFile(f, lang, ...rest);
	const program = ts.createProgram([virt], options, host);
	const diags = ts.getPreEmitDiagnostics(program);
	for (const d of diags) {
		const msg = ts.flattenDiagnosticMessageText(d.messageText, ' ');
		let obj = '?';
		if (d.file && d.file.fileName === virt && d.start !== undefined) {
			const line = d.file.getLineAndCharacterOfPosition(d.start).line;
			obj = where[Math.floor(line / 2)] || '?';
		}
		fail(`${obj}: ${msg}`);
	}
	if (!diags.length)
		ok(`no unknown fields in ${objects.length} objects (strict field check)`);
}

function find(objects, kind) {
	return objects.filter((o) => o.obj.kind === kind);
}

function consistencyCheck(dir, files, objects, k, configOut) {
	if (!k) {
		fail('kustomization.yaml is missing');
		return;
	}
	const manifests = files.filter((f) => f !== 'kustomization.yaml');
	const listed = [...(k.resources || [])].sort();
	if (JSON.stringify(listed) !== JSON.stringify(manifests))
		fail(`kustomization.yaml resources ${JSON.stringify(listed)} != files ${JSON.stringify(manifests)}`);
	else
		ok(`kustomization.yaml lists every manifest: ${listed.join(' ')}`);

	const ns = k.namespace;
	for (const o of objects) {
		if (o.obj.kind === 'Namespace') {
			if (o.obj.metadata.name !== ns)
				fail(`${name(o)}: the kustomization's namespace is ${ns}`);
		} else if (o.obj.metadata.namespace !== ns) {
			fail(`${name(o)}: namespace ${o.obj.metadata.namespace}, kustomization says ${ns}`);
		}
	}

	const [ds] = find(objects, 'DaemonSet');
	const [cm] = find(objects, 'ConfigMap');
	if (!ds || !cm) {
		fail('expected a DaemonSet and a ConfigMap');
		return;
	}
	const spec = ds.obj.spec;
	const pod = spec.template.spec;
	const c = pod.containers.find((x) => x.name === 'looplessd');
	if (!c) {
		fail(`${name(ds)}: no container named looplessd`);
		return;
	}
	for (const [l, v] of Object.entries(spec.selector.matchLabels || {}))
		if ((spec.template.metadata.labels || {})[l] !== v)
			fail(`${name(ds)}: selector ${l}=${v} does not match the pod labels`);
	const ru = (spec.updateStrategy || {}).rollingUpdate || {};
	if (spec.updateStrategy.type !== 'RollingUpdate' || String(ru.maxSurge) !== '0')
		fail(`${name(ds)}: updateStrategy must be RollingUpdate with maxSurge 0 (one looplessd per pin dir)`);
	const cmVol = pod.volumes.find((v) => v.configMap);
	if (!cmVol || cmVol.configMap.name !== cm.obj.metadata.name)
		fail(`${name(ds)}: no volume of ConfigMap ${cm.obj.metadata.name}`);
	if (!pod.tolerations || !pod.tolerations.some((t) => t.operator === 'Exists' && !t.key))
		fail(`${name(ds)}: needs a toleration of every taint (operator: Exists)`);
	const sc = c.securityContext || {};
	if (sc.privileged)
		fail(`${name(ds)}: looplessd must not be privileged`);
	const caps = ((sc.capabilities || {}).add || []).slice().sort();
	if (JSON.stringify(caps) !== JSON.stringify(['BPF', 'NET_ADMIN', 'PERFMON']))
		fail(`${name(ds)}: capabilities ${caps} != BPF NET_ADMIN PERFMON (looplessd's check_caps)`);
	if (!((sc.capabilities || {}).drop || []).includes('ALL'))
		fail(`${name(ds)}: drop ALL capabilities first`);
	const mounts = Object.fromEntries(c.volumeMounts.map((m) => [m.mountPath, m]));
	if (!mounts['/sys/fs/bpf'])
		fail(`${name(ds)}: /sys/fs/bpf is not mounted`);

	const conf = cm.obj.data['looplessd.conf'];
	if (!conf) {
		fail(`${name(cm)}: no looplessd.conf`);
		return;
	}
	const m = /^\s*metrics\s*=\s*(\S+):(\d+)\s*$/m.exec(conf);
	const port = c.ports.find((p) => p.name === 'metrics');
	if (!m || !port || String(port.containerPort) !== m[2])
		fail(`${name(ds)}: containerPort "metrics" must be the config's metrics port`);
	for (const probe of ['readinessProbe', 'livenessProbe']) {
		const p = c[probe];
		if (!p || !p.httpGet || p.httpGet.path !== '/healthz' || p.httpGet.port !== 'metrics')
			fail(`${name(ds)}: ${probe} must GET /healthz on port "metrics"`);
	}
	const annotations = spec.template.metadata.annotations || {};
	if (m && annotations['prometheus.io/port'] !== m[2])
		fail(`${name(ds)}: prometheus.io/port annotation != metrics port`);
	const cg = /^\s*cgroup\s*=\s*(\S+)/m.exec(conf);
	const cgMount = Object.keys(mounts).find((p) => cg && cg[1].startsWith(p + '/'));
	if (!cgMount)
		fail(`${name(cm)}: cgroup ${cg && cg[1]} is not below a mounted host path`);
	if (configOut)
		fs.writeFileSync(configOut, conf);
	if (!problems.length)
		ok('the objects fit together (namespace, ConfigMap, selector, ports, probes, capabilities)');
}

function k8s(dir, configOut) {
	const { files, objects, kustomization } = loadManifests(dir);
	finish();
	schemaCheck(objects);
	strictFieldCheck(objects);
	finish();
	consistencyCheck(dir, files, objects, kustomization, configOut);
	finish();
}

function dockerfile(file, packages) {
	const { validate } = require('dockerfile-utils');
	const text = fs.readFileSync(file, 'utf8');
	for (const d of validate(text))
		fail(`${file}:${d.range.start.line + 1}: ${d.message}`);
	finish();
	ok(`${file}: dockerfile-utils finds nothing`);

	/* Instructions with their continuation lines joined. */
	const instr = text
		.replace(/\\\n/g, ' ')
		.split('\n')
		.filter((l) => l.trim() && !l.trim().startsWith('#'))
		.map((l) => {
			const [, op, rest] = /^\s*(\S+)\s*(.*)$/.exec(l);
			return { op: op.toUpperCase(), rest };
		});
	const froms = instr.filter((i) => i.op === 'FROM');
	if (froms.length < 2)
		fail(`${file}: expected a build stage and a runtime stage`);
	for (const f of froms)
		if (!/^debian:(12|bookworm)(-slim)?(\s|$)/.test(f.rest))
			fail(`${file}: FROM ${f.rest}: expected Debian 12`);
	const last = instr.length - 1 - [...instr].reverse().findIndex((i) => i.op === 'FROM');
	const build = instr.slice(0, last);
	const run = instr.slice(last);
	if (!build.some((i) => i.op === 'RUN' && /\bmake\b.*\binstall\b.*DESTDIR=/.test(i.rest)))
		fail(`${file}: the build stage must run \`make install DESTDIR=...\` (same layout as a host install)`);
	if (!run.some((i) => i.op === 'COPY' && /--from=build\b/.test(i.rest)))
		fail(`${file}: the runtime stage must COPY --from=build the installed tree`);
	const apt = run.filter((i) => i.op === 'RUN' && /apt-get install/.test(i.rest));
	const installed = new Set(
		apt.flatMap((i) => i.rest.split(/\s+/)).filter((w) => /^lib[a-z0-9.+-]+$/.test(w)));
	const want = new Set(packages.filter((p) => p !== 'libc6'));
	for (const p of want)
		if (!installed.has(p))
			fail(`${file}: the runtime stage lacks ${p} (the binaries link its library)`);
	for (const p of installed)
		if (!want.has(p))
			fail(`${file}: the runtime stage installs ${p}, which no binary links`);
	const ep = run.find((i) => i.op === 'ENTRYPOINT');
	if (!ep || JSON.stringify(JSON.parse(ep.rest)) !== '["/usr/sbin/looplessd"]')
		fail(`${file}: ENTRYPOINT must be ["/usr/sbin/looplessd"] (make install PREFIX=/usr)`);
	const user = run.filter((i) => i.op === 'USER').pop();
	if (!user)
		fail(`${file}: state the runtime USER explicitly (and why)`);
	finish();
	ok(`${file}: stages, make install, runtime packages (${[...want].join(' ')}), entrypoint`);
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'k8s' && args.length >= 1) {
	const i = args.indexOf('--config-out');
	k8s(args[0], i >= 0 ? args[i + 1] : null);
} else if (cmd === 'dockerfile' && args.length >= 1) {
	dockerfile(args[0], args.slice(1));
} else {
	console.error('usage: check-deploy.js k8s DIR [--config-out FILE] | dockerfile FILE PKG...');
	process.exit(2);
}
