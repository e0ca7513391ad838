// SPDX-License-Identifier: Apache-2.0

package config

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != ":10000" || c.LogLevel != "info" || c.LogFormat != "text" || c.IMAPIdleMax != 10*time.Minute ||
		c.MaxMessageBytes != 64<<20 || c.DeliveryPerHost != 32 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestEnvAndFlags(t *testing.T) {
	c, err := Load([]string{"--log-format", "json"}, env(map[string]string{
		"EL_LISTEN_ADDR": "127.0.0.1:9", "EL_LOG_FORMAT": "text", "EL_IMAP_FOLDER_POLL": "5s", "EL_MAX_MESSAGE_BYTES": "1MiB",
		"EL_PATH_PREFIX": "/exchangelistener", "EL_IMAP_TLS_INSECURE": "true",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != "127.0.0.1:9" || c.LogFormat != "json" || c.IMAPFolderPoll != 5*time.Second ||
		c.MaxMessageBytes != 1<<20 || c.PathPrefix != "/exchangelistener" || !c.IMAPTLSInsecure {
		t.Fatalf("got %+v", c)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	cases := map[string]string{
		"EL_IMAP_IDLE_MAX":     "forever",
		"EL_LOG_FORMAT":        "xml",
		"EL_PATH_PREFIX":       "noslash",
		"EL_DELIVERY_PER_HOST": "-1",
		"EL_MAX_MESSAGE_BYTES": "lots",
		"EL_IMAP_TLS_INSECURE": "maybe",
	}
	for k, v := range cases {
		_, err := Load(nil, env(map[string]string{k: v}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: err = %v, want one naming the variable", k, v, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "2KiB": 2048, "3MB": 3e6, "1GiB": 1 << 30, "5 MiB": 5 << 20} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseSize("-1"); err == nil {
		t.Error("negative size accepted")
	}
}

// The README's configuration table must list every setting.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings {
		if !strings.Contains(string(b), "`"+s.Env+"`") {
			t.Errorf("README.md does not document %s", s.Env)
		}
	}
}
