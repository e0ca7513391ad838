// SPDX-License-Identifier: Apache-2.0

package redisconf_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/redisconf"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// pw is a password no error message may contain.
const pw = "S3cr3t-Pa55"

func TestRedisOptionsFromConfig(t *testing.T) {
	type want struct {
		addrs              []string
		user, pass         string
		db                 int
		tls, insecure      bool
		master, serverName string
		cluster            bool
		dial, read         time.Duration
		client             string
	}
	cases := []struct {
		name string
		in   redisconf.Config
		want want
	}{
		{"url plain", redisconf.Config{URL: "redis://redis.ns.svc:6380"}, want{addrs: []string{"redis.ns.svc:6380"}}},
		{"url default port", redisconf.Config{URL: "redis://redis"}, want{addrs: []string{"redis:6379"}}},
		{"url user password db", redisconf.Config{URL: "redis://el:" + pw + "@10.0.0.1:6379/3"},
			want{addrs: []string{"10.0.0.1:6379"}, user: "el", pass: pw, db: 3}},
		{"url password only", redisconf.Config{URL: "redis://:" + pw + "@h/1"}, want{addrs: []string{"h:6379"}, pass: pw, db: 1}},
		{"url percent-encoded password", redisconf.Config{URL: "redis://u:p%40ss%2Fw%3Ard@h"}, want{addrs: []string{"h:6379"}, user: "u", pass: "p@ss/w:rd"}},
		{"url unencoded @ in password", redisconf.Config{URL: "redis://u:p@ss@h"}, want{addrs: []string{"h:6379"}, user: "u", pass: "p@ss"}},
		{"rediss", redisconf.Config{URL: "rediss://h:6380?skip_verify=true"}, want{addrs: []string{"h:6380"}, tls: true, insecure: true}},
		{"url db param wins", redisconf.Config{URL: "redis://h/2?db=5"}, want{addrs: []string{"h:6379"}, db: 5}},
		{"url params", redisconf.Config{URL: "redis://h?dial_timeout=3&read_timeout=1500ms&client_name=el-0&pool_size=20"},
			want{addrs: []string{"h:6379"}, dial: 3 * time.Second, read: 1500 * time.Millisecond, client: "el-0"}},
		{"url cluster commas", redisconf.Config{URL: "rediss://u:" + pw + "@n1:7000,n2:7001,n3"},
			want{addrs: []string{"n1:7000", "n2:7001", "n3:6379"}, user: "u", pass: pw, tls: true, cluster: true}},
		{"url cluster addr params", redisconf.Config{URL: "redis://n1:7000?addr=n2:7001&addr=n3:7002"},
			want{addrs: []string{"n1:7000", "n2:7001", "n3:7002"}, cluster: true}},
		{"url cluster endpoint", redisconf.Config{URL: "redis://cfg.cache.amazonaws.com?cluster=true"},
			want{addrs: []string{"cfg.cache.amazonaws.com:6379"}, cluster: true}},
		{"url sentinel", redisconf.Config{URL: "redis://:" + pw + "@s1:26379,s2:26379/2?master_name=mymaster"},
			want{addrs: []string{"s1:26379", "s2:26379"}, pass: pw, db: 2, master: "mymaster"}},
		{"url wins over the rest", redisconf.Config{URL: "redis://a", Connection: "b:1", Host: "c:2", DB: 4}, want{addrs: []string{"a:6379"}}},
		{"url password from ExchangeListenerRedisPassword", redisconf.Config{URL: "redis://a", Password: pw}, want{addrs: []string{"a:6379"}, pass: pw}},
		{"url password not overridden", redisconf.Config{URL: "redis://:x@a", Password: pw}, want{addrs: []string{"a:6379"}, pass: "x"}},

		{"connection string", redisconf.Config{Connection: "redis.ns.svc:6379,password=" + pw + ",defaultDatabase=2,user=el,abortConnect=false,connectTimeout=5000,syncTimeout=2000"},
			want{addrs: []string{"redis.ns.svc:6379"}, user: "el", pass: pw, db: 2, dial: 5 * time.Second, read: 2 * time.Second}},
		{"connection string ssl azure", redisconf.Config{Connection: "x.redis.cache.windows.net,password=a=b=c,ssl=True,AbortConnect=False"},
			want{addrs: []string{"x.redis.cache.windows.net:6380"}, pass: "a=b=c", tls: true}},
		{"connection string sslHost", redisconf.Config{Connection: "10.1.1.1:6380,ssl=true,sslHost=redis.corp"},
			want{addrs: []string{"10.1.1.1:6380"}, tls: true, serverName: "redis.corp"}},
		{"connection string cluster", redisconf.Config{Connection: "n1:7000, n2:7001 ,name=el"},
			want{addrs: []string{"n1:7000", "n2:7001"}, cluster: true, client: "el"}},
		{"connection string sentinel", redisconf.Config{Connection: "s1:26379,s2:26379,serviceName=mymaster,password=" + pw},
			want{addrs: []string{"s1:26379", "s2:26379"}, master: "mymaster", pass: pw}},
		{"connection string wins over host", redisconf.Config{Connection: "b:1", Host: "c:2", DB: 4, Password: pw}, want{addrs: []string{"b:1"}, pass: pw}},

		{"original host", redisconf.Config{Host: "redis-master.default.svc.cluster.local:6379", DB: 3, Password: pw},
			want{addrs: []string{"redis-master.default.svc.cluster.local:6379"}, db: 3, pass: pw}},
		{"original host without port", redisconf.Config{Host: "redis"}, want{addrs: []string{"redis:6379"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := redisconf.Options(c.in)
			if err != nil {
				t.Fatal(err)
			}
			w := c.want
			cluster := (len(o.Addrs) > 1 && o.MasterName == "") || o.IsClusterMode
			if !slices.Equal(o.Addrs, w.addrs) || o.Username != w.user || o.Password != w.pass || o.DB != w.db ||
				(o.TLSConfig != nil) != w.tls || o.MasterName != w.master || cluster != w.cluster ||
				o.DialTimeout != w.dial || o.ReadTimeout != w.read || o.ClientName != w.client {
				t.Fatalf("got %+v (tls %v)\nwant %+v", o, o.TLSConfig != nil, w)
			}
			if o.TLSConfig != nil && (o.TLSConfig.InsecureSkipVerify != w.insecure || o.TLSConfig.ServerName != w.serverName) {
				t.Fatalf("tls = %+v, want insecure=%v serverName=%q", o.TLSConfig, w.insecure, w.serverName)
			}
			if d := redisconf.Describe(o); strings.Contains(d, pw) || (o.Password != "" && !strings.Contains(d, "password=set")) {
				t.Fatalf("description %q", d)
			}
		})
	}
}

func TestRedisOptionsFromConfigErrors(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   redisconf.Config
		want string // in the error, which must also name the setting
	}{
		{"nothing", redisconf.Config{}, "no Redis configured"},
		{"scheme", redisconf.Config{URL: "http://u:" + pw + "@h"}, "EL_REDIS_URL"},
		{"unencoded space in password", redisconf.Config{URL: "redis://u:" + pw + " x@h"}, "percent-encoded"},
		{"bad port", redisconf.Config{URL: "redis://u:" + pw + "@h:99999"}, "EL_REDIS_URL"},
		{"bad db", redisconf.Config{URL: "redis://:" + pw + "@h/x"}, "database"},
		{"unknown param", redisconf.Config{URL: "redis://h?passwd=" + pw}, `unknown parameter "passwd"`},
		{"bad duration", redisconf.Config{URL: "redis://h?dial_timeout=soon"}, "dial_timeout"},
		{"skip_verify without tls", redisconf.Config{URL: "redis://h?skip_verify=true"}, "rediss"},
		{"cluster db", redisconf.Config{URL: "redis://a,b/3"}, "database 0"},
		{"empty host in list", redisconf.Config{URL: "redis://a,,b"}, "empty host"},
		{"connection unknown option", redisconf.Config{Connection: "h:1,pasword=" + pw}, `unknown option "pasword"`},
		{"connection no host", redisconf.Config{Connection: "password=" + pw}, "EL_REDIS_CONNECTION"},
		{"connection bad ssl", redisconf.Config{Connection: "h,ssl=yes please"}, "ssl"},
		{"connection bad db", redisconf.Config{Connection: "h,defaultDatabase=one"}, "defaultDatabase"},
		{"connection bad port", redisconf.Config{Connection: "h:0,password=" + pw}, "bad port"},
		{"host bad port", redisconf.Config{Host: "h:x", Password: pw}, "ExchangeListenerRedisHost"},
		{"tls settings without tls", redisconf.Config{URL: "redis://:" + pw + "@h", TLSInsecure: true}, "need a TLS connection"},
		{"ca file missing", redisconf.Config{URL: "rediss://h", TLSCAFile: filepath.Join(t.TempDir(), "none.pem")}, "EL_REDIS_TLS_CA_FILE"},
		{"ca file without pem", redisconf.Config{URL: "rediss://h", TLSCAFile: caFile}, "no PEM"},
	}
	for _, c := range cases {
		_, err := redisconf.Options(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%s: error leaks the password: %v", c.name, err)
		}
		if c.in.Configured() && !strings.Contains(err.Error(), "EL_REDIS") && !strings.Contains(err.Error(), "ExchangeListenerRedis") {
			t.Errorf("%s: error does not name the setting: %v", c.name, err)
		}
	}
}

// Each configuration way reaches a real Redis with an ACL user over TLS (URL,
// connection string) or with requirepass (the original variables).
func TestRedisOptionsConnect(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{TLS: true, Password: "default-pw", User: "el", UserPassword: pw})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, r.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, tlsPort, _ := strings.Cut(r.TLSAddr, ":")
	for name, c := range map[string]redisconf.Config{
		"url":               {URL: "rediss://el:" + pw + "@" + r.TLSAddr + "/2", TLSCAFile: ca},
		"url password var":  {URL: "rediss://el@localhost:" + tlsPort + "/2", Password: pw, TLSCAFile: ca},
		"connection string": {Connection: r.TLSAddr + ",user=el,password=" + pw + ",ssl=true,defaultDatabase=2,abortConnect=false", TLSCAFile: ca},
		"original names":    {Host: r.Addr, DB: 2, Password: "default-pw"},
	} {
		t.Run(name, func(t *testing.T) {
			o, err := redisconf.Options(c)
			if err != nil {
				t.Fatal(err)
			}
			o.MaxRetries = -1
			rdb := redis.NewUniversalClient(o)
			defer rdb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := rdb.Set(ctx, "conn:"+name, "x", 0).Err(); err != nil {
				t.Fatalf("%s: %v", redisconf.Describe(o), err)
			}
			if got := rdb.ClientInfo(ctx).Val(); got == nil || got.DB != 2 {
				t.Fatalf("connected to db %+v, want 2", got)
			}
		})
	}
	// Without the CA the certificate is refused; with EL_REDIS_TLS_INSECURE accepted.
	for _, insecure := range []bool{false, true} {
		o, err := redisconf.Options(redisconf.Config{URL: "rediss://el:" + pw + "@" + r.TLSAddr, TLSInsecure: insecure})
		if err != nil {
			t.Fatal(err)
		}
		o.MaxRetries = -1
		rdb := redis.NewUniversalClient(o)
		err = rdb.Ping(context.Background()).Err()
		_ = rdb.Close()
		if (err == nil) != insecure {
			t.Errorf("insecure=%v: ping err = %v", insecure, err)
		}
	}
}
