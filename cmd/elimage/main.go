// SPDX-License-Identifier: Apache-2.0

// Command elimage builds the emaillistener container image without a Docker
// engine: it compiles the static service binary (as `make build` does) and
// assembles an image FROM scratch with go-containerregistry, equivalent to the
// Dockerfile's distroless image — the binary, CA certificates for TLS to mail
// servers and Creatio, a nonroot user (65532:65532), port 10000, OCI labels.
//
//	go run ./cmd/elimage [-out bin/image] [-tar bin/emaillistener.tar] [-version v] [-arch amd64,arm64]
//
// -out receives an OCI image layout (an index with one image per -arch; push it
// with `crane push bin/image <ref>` or `skopeo copy oci:bin/image docker://<ref>`).
// -tar additionally writes the first architecture's image as a tarball that
// `docker load -i` and `podman load -i` accept, tagged -tag.
//
// The build is reproducible: file times and the image's creation time come from
// SOURCE_DATE_EPOCH, else the last commit's time, so the same source and
// toolchain give the same digests.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	binPath     = "/usr/local/bin/emaillistener"
	caPath      = "/etc/ssl/certs/ca-certificates.crt"
	nonroot     = 65532
	servicePort = "10000/tcp"
	sourceURL   = "https://github.com/emaillistener/emaillistener"
)

type options struct {
	src      string // module root
	out      string // OCI layout directory
	tarPath  string // docker-loadable tarball ("" = none)
	tag      string // tag inside the tarball
	version  string
	revision string
	arches   []string
	caFile   string
	created  time.Time
}

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "elimage:", err)
		os.Exit(1)
	}
}

func run(args []string, log io.Writer) error {
	fs := flag.NewFlagSet("elimage", flag.ContinueOnError)
	var o options
	var arch string
	fs.StringVar(&o.src, "src", ".", "module root of emaillistener")
	fs.StringVar(&o.out, "out", "bin/image", "OCI image layout directory to write (replaced if it holds a layout)")
	fs.StringVar(&o.tarPath, "tar", "", "also write a `docker load` tarball of the first -arch here")
	fs.StringVar(&o.tag, "tag", "", "image reference inside the tarball (default emaillistener:<version>)")
	fs.StringVar(&o.version, "version", "", "version stamped into the binary and the labels (default: git describe, else dev)")
	fs.StringVar(&o.revision, "revision", "", "source revision label (default: git rev-parse HEAD)")
	fs.StringVar(&arch, "arch", runtime.GOARCH, "comma-separated linux architectures, e.g. amd64,arm64")
	fs.StringVar(&o.caFile, "ca", caPath, "PEM bundle of trusted CA certificates to put at "+caPath)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, a := range strings.Split(arch, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.arches = append(o.arches, a)
		}
	}
	if len(o.arches) == 0 {
		return errors.New("-arch: no architecture")
	}
	if o.version == "" {
		o.version = gitOutput(o.src, "describe", "--tags", "--always", "--dirty")
		if o.version == "" {
			o.version = "dev"
		}
	}
	if o.revision == "" {
		o.revision = gitOutput(o.src, "rev-parse", "HEAD")
	}
	var err error
	if o.created, err = creationTime(o.src); err != nil {
		return err
	}
	if o.tag == "" {
		o.tag = "emaillistener:" + tagSafe(o.version)
	}
	return build(o, log)
}

func build(o options, log io.Writer) error {
	ca, err := os.ReadFile(o.caFile)
	if err != nil {
		return fmt.Errorf("CA certificates (-ca): %w", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return fmt.Errorf("CA certificates (-ca): %s holds no PEM certificate", o.caFile)
	}
	tmp, err := os.MkdirTemp("", "elimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	idx := v1.ImageIndex(empty.Index)
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	var first v1.Image
	for _, arch := range o.arches {
		bin := filepath.Join(tmp, "emaillistener-"+arch)
		if err := compile(o, arch, bin); err != nil {
			return err
		}
		img, err := image(o, arch, bin, ca)
		if err != nil {
			return fmt.Errorf("image %s: %w", arch, err)
		}
		if first == nil {
			first = img
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform:    &v1.Platform{OS: "linux", Architecture: arch},
				Annotations: map[string]string{"org.opencontainers.image.ref.name": tagSafe(o.version)},
			},
		})
		d, _ := img.Digest()
		fmt.Fprintf(log, "elimage: linux/%s %s\n", arch, d)
	}
	if err := prepareLayoutDir(o.out); err != nil {
		return err
	}
	if _, err := layout.Write(o.out, idx); err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	fmt.Fprintf(log, "elimage: OCI layout in %s (version %s)\n", o.out, o.version)
	if o.tarPath != "" {
		ref, err := name.NewTag(o.tag)
		if err != nil {
			return fmt.Errorf("-tag: %w", err)
		}
		if err := tarball.WriteToFile(o.tarPath, ref, first); err != nil {
			return fmt.Errorf("write tarball: %w", err)
		}
		fmt.Fprintf(log, "elimage: %s (linux/%s) in %s: docker load -i %s\n", ref, o.arches[0], o.tarPath, o.tarPath)
	}
	return nil
}

// compile builds the service exactly as the Makefile's build target does.
func compile(o options, arch, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+o.version, "-o", out, "./cmd/emaillistener")
	cmd.Dir = o.src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build (linux/%s): %v\n%s", arch, err, b)
	}
	return nil
}

// image assembles one architecture's image: a single layer on scratch.
func image(o options, arch, bin string, ca []byte) (v1.Image, error) {
	exe, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(o.created, exe, ca)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	created := v1.Time{Time: o.created}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "elimage: emaillistener " + o.version,
			Comment:   "static binary, CA certificates, nonroot user",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = created
	cf.Author = ""
	cf.Config = v1.Config{
		Entrypoint:   []string{binPath},
		Cmd:          []string{"serve"},
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=" + caPath},
		User:         fmt.Sprintf("%d:%d", nonroot, nonroot),
		WorkingDir:   "/home/nonroot",
		ExposedPorts: map[string]struct{}{servicePort: {}},
		Labels:       labels(o),
	}
	return mutate.ConfigFile(img, cf)
}

// labels are the OCI annotation keys as image labels, the same as the
// Dockerfile's LABEL.
func labels(o options) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":         "emaillistener",
		"org.opencontainers.image.description":   "Open-source drop-in replacement for Creatio's Email Listener microservice",
		"org.opencontainers.image.source":        sourceURL,
		"org.opencontainers.image.url":           sourceURL,
		"org.opencontainers.image.documentation": sourceURL + "#readme",
		"org.opencontainers.image.licenses":      "Apache-2.0",
		"org.opencontainers.image.version":       o.version,
		"org.opencontainers.image.created":       o.created.UTC().Format(time.RFC3339),
	}
	if o.revision != "" {
		l["org.opencontainers.image.revision"] = o.revision
	}
	return l
}

// rootfs is the layer: what distroless/static:nonroot provides that the
// service uses (CA roots, a nonroot user with a home, /tmp), plus the binary.
func rootfs(mtime time.Time, exe, ca []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnonroot:x:65532:\n"
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error { return file(strings.TrimPrefix(caPath, "/"), 0o644, ca) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/nonroot", 0o700, nonroot) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return dir("usr", 0o755, 0) },
		func() error { return dir("usr/local", 0o755, 0) },
		func() error { return dir("usr/local/bin", 0o755, 0) },
		func() error { return file(strings.TrimPrefix(binPath, "/"), 0o755, exe) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// prepareLayoutDir makes dir ready for a fresh layout: a previous layout is
// removed (stale blobs would stay otherwise); any other non-empty directory is
// refused rather than overwritten.
func prepareLayoutDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("-out %s: not empty and not an OCI layout; refusing to overwrite", dir)
	}
	return os.RemoveAll(dir)
}

// creationTime is SOURCE_DATE_EPOCH, else the last commit's time, else now.
func creationTime(src string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if s := gitOutput(src, "log", "-1", "--format=%ct"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

func gitOutput(dir string, args ...string) string {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// tagSafe turns a version into a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}).
func tagSafe(v string) string {
	t := tagUnsafe.ReplaceAllString(v, "-")
	if t == "" || t[0] == '.' || t[0] == '-' {
		t = "v" + t
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
