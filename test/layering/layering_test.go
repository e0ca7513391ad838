// SPDX-License-Identifier: Apache-2.0

// Package layering checks the import graph against the layers the code is
// built in (docs/ARCHITECTURE.md): base packages import nothing of ours,
// protocol adapters only base packages, the consumers (syncer, history,
// placement, service, httpapi) no adapter, nothing imports app, and testenv
// only tests.
package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/emaillistener/emaillistener/"

// Layers, by package path under internal/.
var (
	base = []string{"mail", "backoff", "budget", "certs", "clock", "config", "jwtclaims", "netguard", "obs", "runner", "secret"}
	// pure: wire formats and pure steps on domain types.
	pure = []string{"creatio", "mime", "compose", "lockout", "ingest", "source", "source/exo", "source/wake", "redisconf", "webhook"}
	// adapters talk to one kind of peer (mail servers, Redis, the client).
	adapters = []string{"source/imapsrc", "source/ewssrc", "source/graphsrc", "graph", "ews", "ews/autodiscover", "sender", "store", "lease", "cluster", "delivery", "oauthtoken"}
	// consumers use adapters only through interfaces they declare.
	consumers = []string{"syncer", "history", "placement", "service", "httpapi", "ui", "nativeapi", "events"}
)

// exceptions lists what a package may import beyond its layer's rule.
var exceptions = map[string][]string{
	// outbox composes two adapters: SMTP submission, then the copy in the
	// IMAP Sent folder.
	"outbox": {"sender", "source/imapsrc"},
	// placement places mailboxes with the cluster's pure placement function
	// and its event format.
	"placement": {"cluster"},
	// The Exchange adapter speaks EWS through its wire client, as the IMAP
	// adapter speaks IMAP through go-imap.
	"source/ewssrc": {"ews", "ews/autodiscover"},
	// The Microsoft Graph adapter speaks Graph through its wire client.
	"source/graphsrc": {"graph"},
}

func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	g := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], module) {
			continue
		}
		pkg := strings.TrimPrefix(f[0], module)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module) {
				g[pkg] = append(g[pkg], strings.TrimPrefix(imp, module))
			}
		}
	}
	return g
}

func internal(name string) string { return "internal/" + name }

func TestLayering(t *testing.T) {
	g := imports(t)
	layer := map[string]int{}
	for i, l := range [][]string{base, pure, adapters, consumers} {
		for _, p := range l {
			layer[internal(p)] = i
		}
	}
	for pkg, deps := range g {
		for _, dep := range deps {
			switch {
			case dep == "internal/app" || strings.HasPrefix(dep, "cmd/"):
				if !strings.HasPrefix(pkg, "cmd/") || dep != "internal/app" {
					t.Errorf("%s imports %s: nothing but cmd imports app", pkg, dep)
				}
			case dep == "internal/testenv" || strings.HasPrefix(dep, "internal/testenv/"):
				// elbench is the benchmark harness: it starts the same peers.
				if !strings.HasPrefix(pkg, "internal/testenv") && pkg != "cmd/elbench" {
					t.Errorf("%s imports %s: testenv is for tests and the benchmark harness only", pkg, dep)
				}
			}
			lp, pok := layer[pkg]
			ld, dok := layer[dep]
			if !pok || !dok {
				continue // app, cmd, outbox, test packages: checked below or free
			}
			short := strings.TrimPrefix(pkg, "internal/")
			if slices.Contains(exceptions[short], strings.TrimPrefix(dep, "internal/")) {
				continue
			}
			bad := false
			switch lp {
			case 0: // base: nothing of ours
				bad = true
			case 1: // pure: base, and source/redisconf below
				bad = ld > 1 || (ld == 1 && !(dep == "internal/source" || dep == "internal/certs"))
			case 2: // adapters: base and pure only
				bad = ld >= 2
			case 3: // consumers: no adapter
				bad = ld == 2
			}
			if bad {
				t.Errorf("%s imports %s across the layers", pkg, dep)
			}
		}
	}
	for _, p := range []string{"internal/outbox"} {
		for _, dep := range g[p] {
			if l, ok := layer[dep]; ok && l == 3 {
				t.Errorf("%s imports the consumer %s", p, dep)
			}
		}
	}
	// Every internal package is in a layer, so a new one is placed on purpose.
	for pkg := range g {
		if strings.HasPrefix(pkg, "internal/") && !strings.HasPrefix(pkg, "internal/testenv") && !strings.HasPrefix(pkg, "internal/store/storetest") {
			if _, ok := layer[pkg]; !ok && pkg != "internal/app" && pkg != "internal/outbox" {
				t.Errorf("%s is in no layer: add it to layering_test.go", pkg)
			}
		}
	}
}
