// SPDX-License-Identifier: Apache-2.0

package secret

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	_, _ = rand.Read(k)
	return k
}

func newBox(t *testing.T, key []byte) *Box {
	t.Helper()
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	b := newBox(t, newKey(t))
	for _, pt := range [][]byte{nil, {}, []byte("p"), []byte("hunter2 – pässwörd"), bytes.Repeat([]byte{0xAB}, 4096)} {
		sealed := b.Seal(pt)
		if len(sealed) != len(pt)+b.Overhead() {
			t.Errorf("len(Seal(%d bytes)) = %d, want +%d", len(pt), len(sealed), b.Overhead())
		}
		if sealed[0] != version1 {
			t.Errorf("version byte = %d", sealed[0])
		}
		if len(pt) > 3 && bytes.Contains(sealed, pt) {
			t.Error("plaintext visible in sealed value")
		}
		got, err := b.Open(sealed)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, %v; want %q", got, err, pt)
		}
	}
}

func TestNoncesAreFresh(t *testing.T) {
	b := newBox(t, newKey(t))
	x, y := b.Seal([]byte("same")), b.Seal([]byte("same"))
	if bytes.Equal(x, y) {
		t.Fatal("two seals of the same plaintext are identical (nonce reuse)")
	}
}

func TestTamperDetected(t *testing.T) {
	b := newBox(t, newKey(t))
	sealed := b.Seal([]byte("the password"))
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			c := bytes.Clone(sealed)
			c[i] ^= bit
			if _, err := b.Open(c); err == nil {
				t.Fatalf("flipping bit %#x of byte %d went unnoticed", bit, i)
			}
		}
	}
	for n := range sealed {
		if _, err := b.Open(sealed[:n]); !errors.Is(err, ErrOpen) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrOpen", n, err)
		}
	}
	if _, err := b.Open(append(bytes.Clone(sealed), 0)); !errors.Is(err, ErrOpen) {
		t.Fatalf("appended byte: err = %v", err)
	}
	c := bytes.Clone(sealed)
	c[0] = 2
	if _, err := b.Open(c); !errors.Is(err, ErrVersion) {
		t.Fatalf("unknown version: err = %v, want ErrVersion", err)
	}
}

func TestWrongKey(t *testing.T) {
	sealed := newBox(t, newKey(t)).Seal([]byte("the password"))
	if _, err := newBox(t, newKey(t)).Open(sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("open with another key: err = %v, want ErrOpen", err)
	}
}

func TestAssociatedData(t *testing.T) {
	b := newBox(t, newKey(t))
	sealed := b.SealAD([]byte("pw"), []byte("mailbox:a"))
	if got, err := b.OpenAD(sealed, []byte("mailbox:a")); err != nil || string(got) != "pw" {
		t.Fatalf("OpenAD = %q, %v", got, err)
	}
	if _, err := b.OpenAD(sealed, []byte("mailbox:b")); !errors.Is(err, ErrOpen) {
		t.Fatalf("record moved to another mailbox opened: err = %v", err)
	}
	if _, err := b.Open(sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open without the ad: err = %v", err)
	}
}

func TestNewKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := New(make([]byte, n)); !errors.Is(err, ErrKeySize) {
			t.Errorf("New(%d bytes) err = %v, want ErrKeySize", n, err)
		}
	}
}

func TestStringHidesKey(t *testing.T) {
	b := newBox(t, bytes.Repeat([]byte{'K'}, KeySize))
	for _, s := range []string{fmt.Sprint(b), fmt.Sprintf("%+v", b), fmt.Sprintf("%#v", b)} {
		if strings.Contains(s, "KKKK") || !strings.Contains(s, "AES-256-GCM") {
			t.Errorf("formatted box = %q", s)
		}
	}
}

func TestLoadKey(t *testing.T) {
	key := newKey(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	std := base64.StdEncoding.EncodeToString(key)
	ok := []struct {
		name, b64, file string
	}{
		{"env std", std, ""},
		{"env std with newline", std + "\n", ""},
		{"env raw std", base64.RawStdEncoding.EncodeToString(key), ""},
		{"env url", base64.URLEncoding.EncodeToString(key), ""},
		{"file base64 with newline", "", write("b64", []byte(std+"\n"))},
		{"file raw bytes", "", write("raw", key)},
	}
	for _, c := range ok {
		got, err := LoadKey(c.b64, c.file)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: LoadKey = %x, %v", c.name, got, err)
		}
	}
	if k, err := LoadKey("", ""); k != nil || err != nil {
		t.Errorf("nothing configured: %x, %v", k, err)
	}

	short := base64.StdEncoding.EncodeToString(key[:16])
	bad := []struct {
		name, b64, file, want string
	}{
		{"both", std, write("both", key), "not both"},
		{"env too short", short, "", "EL_SECRET_KEY"},
		{"env not base64", "not base64 at all!!", "", "EL_SECRET_KEY"},
		{"file too short", "", write("short", []byte(short)), "EL_SECRET_KEY_FILE"},
		{"file 33 raw bytes", "", write("33", append(bytes.Clone(key), 'x')), "EL_SECRET_KEY_FILE"},
		{"file missing", "", filepath.Join(dir, "missing"), "EL_SECRET_KEY_FILE"},
	}
	for _, c := range bad {
		_, err := LoadKey(c.b64, c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one mentioning %s", c.name, err, c.want)
			continue
		}
		// Never echo key material.
		for _, s := range []string{std, short, "not base64 at all"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error leaks the value: %v", c.name, err)
			}
		}
	}
}

func ExampleBox() {
	key, _ := LoadKey("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "") // EL_SECRET_KEY
	box, _ := New(key)
	sealed := box.SealAD([]byte("hunter2"), []byte("mailbox:42"))
	plain, err := box.OpenAD(sealed, []byte("mailbox:42"))
	fmt.Println(string(plain), err, len(sealed))
	// Output: hunter2 <nil> 36
}

func FuzzOpen(f *testing.F) {
	b, _ := New(bytes.Repeat([]byte{7}, KeySize))
	f.Add(b.Seal([]byte("seed")))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if pt, err := b.Open(data); err == nil {
			// Only a genuine seal can open; re-sealing must round-trip.
			if got, err := b.Open(b.Seal(pt)); err != nil || !bytes.Equal(got, pt) {
				t.Fatal("round trip failed")
			}
		}
	})
}
