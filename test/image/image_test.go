// SPDX-License-Identifier: Apache-2.0

// Package image checks the container image cmd/elimage builds without a Docker
// engine: the OCI layout and the `docker load` tarball hold one image whose
// configuration matches the Dockerfile's (entrypoint, nonroot user, port 10000,
// OCI labels), whose single layer carries a static binary and the CA roots, and
// whose binary, taken out of the layer, reports the stamped version and serves
// the health path. No registry and no Docker engine are used.
package image

import (
	"archive/tar"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const testVersion = "9.8.7-imagetest"

func TestImage(t *testing.T) {
	tmp := t.TempDir()
	out, tarPath := filepath.Join(tmp, "layout"), filepath.Join(tmp, "emaillistener.tar")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "run", "./cmd/elimage", "-out", out, "-tar", tarPath, "-version", testVersion, "-revision", "0123456789abcdef")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	start := time.Now()
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("elimage: %v\n%s", err, b)
	}
	t.Logf("image built in %v", time.Since(start).Round(time.Millisecond))

	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 1 {
		t.Fatalf("index: media type %s, %d manifests", im.MediaType, len(im.Manifests))
	}
	desc := im.Manifests[0]
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != runtime.GOARCH {
		t.Errorf("platform %+v, want linux/%s", desc.Platform, runtime.GOARCH)
	}
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != testVersion {
		t.Errorf("ref.name %q, want %q", got, testVersion)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, img)

	// The docker-loadable tarball holds the same image under the default tag.
	timg, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	cn1, _ := img.ConfigName()
	cn2, _ := timg.ConfigName()
	if cn1 != cn2 {
		t.Errorf("tarball config %s, layout config %s", cn2, cn1)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarPath) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != "emaillistener:"+testVersion {
		t.Errorf("tarball manifest %+v, want tag emaillistener:%s", m, testVersion)
	}

	bin := extract(t, img, tmp)
	checkStatic(t, bin)
	checkVersion(t, bin)
	checkServe(t, bin)
}

func checkConfig(t *testing.T, img v1.Image) {
	t.Helper()
	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", mt)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v (want one, on scratch)", len(layers), err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("os/arch %s/%s", cf.OS, cf.Architecture)
	}
	if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/emaillistener" || strings.Join(c.Cmd, " ") != "serve" {
		t.Errorf("entrypoint %q cmd %q, want the Dockerfile's [/usr/local/bin/emaillistener] [serve]", c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (nonroot)", c.User)
	}
	if _, ok := c.ExposedPorts["10000/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v, want 10000/tcp", c.ExposedPorts)
	}
	want := map[string]string{
		"org.opencontainers.image.title":    "emaillistener",
		"org.opencontainers.image.source":   "https://github.com/emaillistener/emaillistener",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": "0123456789abcdef",
		"org.opencontainers.image.created":  "2023-11-14T22:13:20Z",
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if c.Labels["org.opencontainers.image.description"] == "" {
		t.Error("no description label")
	}
	if !cf.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %v, want SOURCE_DATE_EPOCH", cf.Created.Time)
	}
	// The Dockerfile's Dockerfile labels are the same set.
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for k := range c.Labels {
		if !strings.Contains(string(df), k+"=") {
			t.Errorf("Dockerfile has no LABEL %s", k)
		}
	}
}

// extract walks the image's filesystem, checks what it must and must not
// hold, and writes the binary to dir.
func extract(t *testing.T, img v1.Image, dir string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	seen := map[string]*tar.Header{}
	bin := filepath.Join(dir, "emaillistener")
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "/"), "/")
		seen[name] = h
		switch name {
		case "usr/local/bin/emaillistener":
			f, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		case "etc/ssl/certs/ca-certificates.crt":
			b, _ := io.ReadAll(tr)
			if strings.Count(string(b), "BEGIN CERTIFICATE") < 10 {
				t.Errorf("CA bundle holds %d certificates", strings.Count(string(b), "BEGIN CERTIFICATE"))
			}
		case "etc/passwd":
			b, _ := io.ReadAll(tr)
			if !strings.Contains(string(b), "nonroot:x:65532:65532:") {
				t.Errorf("etc/passwd has no nonroot user: %q", b)
			}
		}
	}
	for _, p := range []string{"usr/local/bin/emaillistener", "etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group", "tmp", "home/nonroot"} {
		if seen[p] == nil {
			t.Errorf("image has no /%s", p)
		}
	}
	if h := seen["usr/local/bin/emaillistener"]; h != nil && (h.Mode&0o111 == 0 || h.Uid != 0) {
		t.Errorf("binary mode %o uid %d: want executable, owned by root (not writable by the service)", h.Mode, h.Uid)
	}
	if h := seen["home/nonroot"]; h != nil && h.Uid != 65532 {
		t.Errorf("/home/nonroot owned by %d", h.Uid)
	}
	if h := seen["tmp"]; h != nil && h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", h.Mode)
	}
	// Scratch base: no shell, nothing but what the service needs.
	for p := range seen {
		if strings.HasPrefix(p, "bin") || strings.HasPrefix(p, "sbin") || strings.HasSuffix(p, "/sh") {
			t.Errorf("unexpected /%s in the image", p)
		}
	}
	if len(seen) > 20 {
		t.Errorf("%d entries in the image, want a minimal filesystem", len(seen))
	}
	return bin
}

// checkStatic: a scratch image has no dynamic loader, so the binary must not
// ask for one.
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary is dynamically linked (PT_INTERP); it cannot run FROM scratch")
		}
	}
	if f.Section(".debug_info") != nil {
		t.Error("binary has DWARF; -s -w expected as in the Makefile")
	}
}

func checkVersion(t *testing.T, bin string) {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if got := strings.TrimSpace(string(out)); got != testVersion {
		t.Errorf("version %q, want %q", got, testVersion)
	}
}

// checkServe starts the image's binary as its CMD does, sees the health path
// answer and stops it with SIGTERM, as a container runtime would.
func checkServe(t *testing.T, bin string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"EL_LISTEN_ADDR=" + addr, "EL_SHUTDOWN_TIMEOUT=2s", "EL_LOG_FORMAT=json", "HOME=" + t.TempDir()}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	}()

	url := "http://" + addr + "/api/listeners/status"
	var status struct {
		ServiceStatus, Version, Store string
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err = getJSON(url, &status)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v\nlogs:\n%s", url, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status.ServiceStatus != "Started" || status.Version != testVersion || status.Store != "memory" {
		t.Errorf("status %+v", status)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\nlogs:\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit 10 s after SIGTERM\nlogs:\n%s", logs.String())
	}
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
