// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

const testPW = "S3cr3t-Pa55"

func TestRedisSettings(t *testing.T) {
	c, err := Load([]string{"--redis-prefix", "prod:", "--node-id", "el-7"}, env(map[string]string{
		"EL_REDIS_URL":                  "rediss://el:" + testPW + "@redis:6380/2",
		"EL_REDIS_CONNECTION":           "redis:6379,password=" + testPW,
		"ExchangeListenerRedisHost":     "redis-master:6379",
		"ExchangeListenerRedisDatabase": "4",
		"ExchangeListenerRedisPassword": testPW,
		"EL_REDIS_TLS_CA_FILE":          "/etc/ca.pem",
		"EL_REDIS_TLS_INSECURE":         "true",
		"EL_SECRET_KEY_FILE":            "/run/secrets/el-key",
		"EL_NODE_ID":                    "from-env",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL.Reveal() != "rediss://el:"+testPW+"@redis:6380/2" || c.RedisConnection.Reveal() != "redis:6379,password="+testPW ||
		c.RedisHost != "redis-master:6379" || c.RedisDatabase != 4 || c.RedisPassword.Reveal() != testPW ||
		c.RedisTLSCAFile != "/etc/ca.pem" || !c.RedisTLSInsecure || c.SecretKeyFile != "/run/secrets/el-key" ||
		c.RedisPrefix != "prod:" || c.NodeID != "el-7" || !c.UsesRedis() {
		t.Fatalf("got %+v", c)
	}
	d := Default()
	if d.RedisPrefix != "el:" || d.RedisDatabase != 0 || d.UsesRedis() || d.AllowPlaintextSecrets {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestRedisConnectionAliases(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"Redis__Connection": "a:1"}, "a:1"},
		{map[string]string{"RedisConnection": "b:2"}, "b:2"},
		{map[string]string{"Redis__Connection": "a:1", "RedisConnection": "b:2"}, "a:1"},
		{map[string]string{"EL_REDIS_CONNECTION": "c:3", "Redis__Connection": "a:1"}, "c:3"},
	} {
		tc.env["EL_ALLOW_PLAINTEXT_SECRETS"] = "true"
		c, err := Load(nil, env(tc.env), io.Discard)
		if err != nil || c.RedisConnection.Reveal() != tc.want {
			t.Errorf("%v: RedisConnection = %q, %v; want %q", tc.env, c.RedisConnection.Reveal(), err, tc.want)
		}
	}
}

func TestNodeIDDefault(t *testing.T) {
	defer func(h func() (string, error)) { hostname = h }(hostname)
	hostname = func() (string, error) { return "host-1", nil }
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "host-1"},
		{map[string]string{"PodName": "emaillistener-2"}, "emaillistener-2"},
		{map[string]string{"PodName": "emaillistener-2", "EL_NODE_ID": "n9"}, "n9"},
	} {
		c, err := Load(nil, env(tc.env), io.Discard)
		if err != nil || c.NodeID != tc.want {
			t.Errorf("%v: NodeID = %q, %v; want %q", tc.env, c.NodeID, err, tc.want)
		}
	}
	hostname = func() (string, error) { return "", errors.New("no host name") }
	if _, err := Load(nil, env(map[string]string{"ExchangeListenerRedisHost": "r:6379", "EL_ALLOW_PLAINTEXT_SECRETS": "true"}), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "EL_NODE_ID") {
		t.Errorf("no node id with Redis: err = %v", err)
	}
	if _, err := Load(nil, env(nil), io.Discard); err != nil {
		t.Errorf("no node id without Redis: %v", err)
	}
}

func TestRedisValidation(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string // "" = valid
	}{
		{"memory store needs no key", nil, ""},
		{"redis without key", map[string]string{"EL_REDIS_URL": "redis://r"}, "EL_SECRET_KEY"},
		{"original host without key", map[string]string{"ExchangeListenerRedisHost": "r:6379"}, "EL_ALLOW_PLAINTEXT_SECRETS"},
		{"alias without key", map[string]string{"RedisConnection": "r:6379"}, "EL_SECRET_KEY"},
		{"redis plaintext allowed", map[string]string{"EL_REDIS_URL": "redis://r", "EL_ALLOW_PLAINTEXT_SECRETS": "true"}, ""},
		{"redis with key", map[string]string{"EL_REDIS_URL": "redis://r", "EL_SECRET_KEY": "x"}, ""},
		{"redis with key file", map[string]string{"EL_REDIS_URL": "redis://r", "EL_SECRET_KEY_FILE": "/k"}, ""},
		{"both key and file", map[string]string{"EL_SECRET_KEY": "x", "EL_SECRET_KEY_FILE": "/k"}, "not both"},
		{"prefix with brace", map[string]string{"EL_REDIS_PREFIX": "el{1}:"}, "EL_REDIS_PREFIX"},
		{"bad database", map[string]string{"ExchangeListenerRedisDatabase": "two"}, "ExchangeListenerRedisDatabase"},
		{"bad insecure", map[string]string{"EL_REDIS_TLS_INSECURE": "maybe"}, "EL_REDIS_TLS_INSECURE"},
		{"bad plaintext flag", map[string]string{"EL_ALLOW_PLAINTEXT_SECRETS": "yes!"}, "EL_ALLOW_PLAINTEXT_SECRETS"},
	}
	for _, c := range cases {
		_, err := Load(nil, env(c.env), io.Discard)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want one containing %s", c.name, err, c.want)
		}
	}
}

// Secrets are environment-only and never printed.
func TestSecretsNeverPrinted(t *testing.T) {
	for _, f := range []string{"--secret-key", "--redis-password"} {
		if _, err := Load([]string{f, testPW}, env(nil), io.Discard); err == nil {
			t.Errorf("flag %s accepted: a secret on the command line is visible in ps", f)
		}
	}
	c, err := Load(nil, env(map[string]string{
		"EL_REDIS_URL": "redis://u:" + testPW + "@r", "EL_REDIS_CONNECTION": "r,password=" + testPW,
		"ExchangeListenerRedisPassword": testPW, "EL_SECRET_KEY": testPW,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", c, "key", c.SecretKey)
	js, _ := json.Marshal(c)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), buf.String(), string(js)} {
		if strings.Contains(out, testPW) {
			t.Fatalf("secret printed: %s", out)
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", c), "RedisPassword:[redacted]") {
		t.Fatalf("%%+v = %+v", c)
	}
	// A bad value of another setting is quoted in the error; a secret never is,
	// because secret settings accept any text and are checked where they are used.
	_, err = Load(nil, env(map[string]string{"EL_SECRET_KEY": testPW, "EL_SECRET_KEY_FILE": "/k", "EL_REDIS_URL": testPW}), io.Discard)
	if err == nil || strings.Contains(err.Error(), testPW) {
		t.Fatalf("err = %v", err)
	}
}
