// SPDX-License-Identifier: Apache-2.0

// Package redisconf turns the operator's Redis settings (a URL, a
// StackExchange.Redis connection string, or the original service's host and
// database variables) into go-redis client options for the store, the leases
// and the cluster membership, which all share one client and one key prefix.
package redisconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/certs"
)

// DefaultPrefix starts every Redis key and channel the service uses
// (EL_REDIS_PREFIX): the store's records, the leases and the cluster's
// heartbeats and events.
const DefaultPrefix = "el:"

// Config is how the operator pointed the service at Redis, as configured
// (environment variables or flags; see the config package). Three ways exist,
// in this order of precedence; the first one set is used and the others are
// ignored:
//
//  1. URL (EL_REDIS_URL): redis:// or rediss:// (TLS) URL,
//     [user[:password]@]host[:port][,host[:port]…][/db][?param=value&…].
//     Several hosts (commas or repeated addr=) mean Redis Cluster seeds;
//     master_name=<name> means the hosts are Sentinels. Parameters: db, addr,
//     master_name, sentinel_username, sentinel_password, cluster (true: a
//     single Cluster configuration endpoint), client_name, protocol (2 or 3),
//     dial_timeout, read_timeout, write_timeout, pool_timeout (30s, or bare
//     seconds), pool_size, min_idle_conns, max_retries, skip_verify.
//  2. Connection (EL_REDIS_CONNECTION, or the original helm chart's
//     Redis__Connection/RedisConnection): a StackExchange.Redis string,
//     host:port[,host:port…],password=…,user=…,ssl=true,sslHost=…,
//     defaultDatabase=N,serviceName=<sentinel master>,name=…,
//     connectTimeout=ms,syncTimeout=ms; other StackExchange options are
//     accepted and ignored. Without a port, 6379 (6380 with ssl=true).
//  3. Host (ExchangeListenerRedisHost, host:port) with DB
//     (ExchangeListenerRedisDatabase), plain TCP.
//
// Password (ExchangeListenerRedisPassword) is the password of the Host way,
// and fills in the password of a URL or connection string that has none (so a
// URL in a ConfigMap can take its password from a Secret).
type Config struct {
	URL         string
	Connection  string
	Host        string
	DB          int
	Password    string
	TLSCAFile   string // EL_REDIS_TLS_CA_FILE: extra PEM CA certificates to trust
	TLSInsecure bool   // EL_REDIS_TLS_INSECURE: accept any server certificate (unsafe)
}

// Configured reports whether any way to reach Redis is set. Without one the
// service runs on the embedded memory store.
func (c Config) Configured() bool {
	return c.URL != "" || c.Connection != "" || c.Host != ""
}

// Source names the setting that Options uses, for logs.
func (c Config) Source() string {
	switch {
	case c.URL != "":
		return "EL_REDIS_URL"
	case c.Connection != "":
		return "EL_REDIS_CONNECTION"
	case c.Host != "":
		return "ExchangeListenerRedisHost"
	}
	return ""
}

// Options turns c into go-redis client options for
// redis.NewUniversalClient: a single node, Sentinel (MasterName set) or Redis
// Cluster (several addresses, or cluster=true). Errors name the setting and
// never contain a password. It reads TLSCAFile but does no network I/O.
func Options(c Config) (*redis.UniversalOptions, error) {
	var (
		o   *redis.UniversalOptions
		err error
	)
	src := c.Source()
	switch src {
	case "EL_REDIS_URL":
		o, err = parseRedisURL(c.URL)
	case "EL_REDIS_CONNECTION":
		o, err = parseConnectionString(c.Connection)
	case "ExchangeListenerRedisHost":
		o, err = hostOptions(c.Host, c.DB)
	default:
		return nil, errors.New("store: no Redis configured (EL_REDIS_URL, EL_REDIS_CONNECTION or ExchangeListenerRedisHost)")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if o.Password == "" {
		o.Password = c.Password
	}
	if (len(o.Addrs) > 1 && o.MasterName == "") || o.IsClusterMode {
		if o.DB != 0 {
			return nil, fmt.Errorf("%s: Redis Cluster has only database 0, not %d", src, o.DB)
		}
	}
	if c.TLSCAFile != "" || c.TLSInsecure {
		if o.TLSConfig == nil {
			return nil, fmt.Errorf("EL_REDIS_TLS_CA_FILE and EL_REDIS_TLS_INSECURE need a TLS connection: use rediss:// (or ssl=true in %s)", "EL_REDIS_CONNECTION")
		}
		o.TLSConfig.InsecureSkipVerify = o.TLSConfig.InsecureSkipVerify || c.TLSInsecure //nolint:gosec // opt-in, documented as unsafe
		if c.TLSCAFile != "" {
			if o.TLSConfig.RootCAs, err = certs.Pool("EL_REDIS_TLS_CA_FILE", c.TLSCAFile); err != nil {
				return nil, err
			}
		}
	}
	return o, nil
}

func newTLS() *tls.Config {
	// ServerName stays empty: crypto/tls then checks each node's certificate
	// against the host it dials, which is what a Cluster with several nodes needs.
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

func parseRedisURL(raw string) (*redis.UniversalOptions, error) {
	raw, hosts := splitHostList(strings.TrimSpace(raw))
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && !strings.Contains(raw, "@") {
			return nil, fmt.Errorf("not a valid URL: %w", ue.Err)
		}
		return nil, errors.New("not a valid URL (is the password percent-encoded?)")
	}
	o := &redis.UniversalOptions{}
	switch u.Scheme {
	case "redis":
	case "rediss":
		o.TLSConfig = newTLS()
	default:
		return nil, fmt.Errorf("scheme %q: want redis:// or rediss://", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("want redis://[user:password@]host[:port][/db]")
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	for _, h := range append([]string{u.Host}, hosts...) {
		addr, err := hostPort(h, "6379")
		if err != nil {
			return nil, err
		}
		o.Addrs = append(o.Addrs, addr)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if o.DB, err = strconv.Atoi(p); err != nil || o.DB < 0 {
			return nil, fmt.Errorf("database %q in the path: want a number", p)
		}
	}
	if err := urlParams(u.Query(), o); err != nil {
		return nil, err
	}
	return o, nil
}

// splitHostList takes the hosts after the first out of a URL's authority
// ("redis://u:p@h1:1,h2:2,h3/0" gives "redis://u:p@h1:1/0" and [h2:2 h3]):
// net/url cannot parse a comma-separated host list.
func splitHostList(raw string) (string, []string) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw, nil
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hostList := "", authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hostList = authority[:at+1], authority[at+1:]
	}
	first, more, ok := strings.Cut(hostList, ",")
	if !ok {
		return raw, nil
	}
	return scheme + "://" + userinfo + first + tail, strings.Split(more, ",")
}

// urlParams applies the URL's query parameters to o; unknown ones are errors.
func urlParams(q url.Values, o *redis.UniversalOptions) error {
	var errs []error
	num := func(k, v string, p *int) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("parameter %s=%q: want a number", k, v))
		}
		*p = n
	}
	dur := func(k, v string, p *time.Duration) {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			*p = time.Duration(n) * time.Second
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("parameter %s=%q: want a duration like 5s", k, v))
		}
		*p = d
	}
	flag := func(k, v string, p *bool) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("parameter %s=%q: want true or false", k, v))
		}
		*p = b
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "addr":
			for _, a := range vs {
				addr, err := hostPort(a, "6379")
				if err != nil {
					errs = append(errs, err)
				}
				o.Addrs = append(o.Addrs, addr)
			}
		case "db":
			num(k, v, &o.DB)
		case "master_name":
			o.MasterName = v
		case "sentinel_username":
			o.SentinelUsername = v
		case "sentinel_password":
			o.SentinelPassword = v
		case "cluster":
			flag(k, v, &o.IsClusterMode)
		case "client_name":
			o.ClientName = v
		case "protocol":
			num(k, v, &o.Protocol)
			if o.Protocol != 2 && o.Protocol != 3 {
				errs = append(errs, fmt.Errorf("parameter protocol=%q: want 2 or 3", v))
			}
		case "dial_timeout":
			dur(k, v, &o.DialTimeout)
		case "read_timeout":
			dur(k, v, &o.ReadTimeout)
		case "write_timeout":
			dur(k, v, &o.WriteTimeout)
		case "pool_timeout":
			dur(k, v, &o.PoolTimeout)
		case "pool_size":
			num(k, v, &o.PoolSize)
		case "min_idle_conns":
			num(k, v, &o.MinIdleConns)
		case "max_retries":
			num(k, v, &o.MaxRetries)
		case "skip_verify":
			var b bool
			flag(k, v, &b)
			if o.TLSConfig == nil {
				errs = append(errs, errors.New("parameter skip_verify needs rediss://"))
			} else {
				o.TLSConfig.InsecureSkipVerify = b //nolint:gosec // opt-in, documented as unsafe
			}
		default:
			// The name only: a mistyped parameter may hold a secret.
			errs = append(errs, fmt.Errorf("unknown parameter %q", k))
		}
	}
	return errors.Join(errs...)
}

// hostPort validates host[:port] and adds the default port.
func hostPort(s, defPort string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty host in the host list")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.Trim(s, "[]"), defPort
	}
	if host == "" || strings.ContainsAny(host, " /@?#") {
		return "", fmt.Errorf("host %q: want host or host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("host %q: bad port", s)
	}
	return net.JoinHostPort(host, port), nil
}

func hostOptions(hosts string, db int) (*redis.UniversalOptions, error) {
	o := &redis.UniversalOptions{DB: db}
	for h := range strings.SplitSeq(hosts, ",") {
		addr, err := hostPort(h, "6379")
		if err != nil {
			return nil, err
		}
		o.Addrs = append(o.Addrs, addr)
	}
	return o, nil
}

// stackExchangeIgnored are StackExchange.Redis options with no meaning here
// (client-side behaviour go-redis handles its own way); accepted so existing
// connection strings keep working.
var stackExchangeIgnored = map[string]bool{
	"abortconnect": true, "allowadmin": true, "asynctimeout": true, "channelprefix": true,
	"checkcertificaterevocation": true, "configchannel": true, "configcheckseconds": true,
	"connectretry": true, "heartbeatconsistencychecks": true, "heartbeatinterval": true,
	"highintegrity": true, "highprioritysocketthreads": true, "keepalive": true, "proxy": true,
	"resolvedns": true, "responsetimeout": true, "setlib": true, "sslprotocols": true,
	"tiebreaker": true, "version": true, "includedetailinexceptions": true,
	"includeperformancecountersinexceptions": true,
}

func parseConnectionString(raw string) (*redis.UniversalOptions, error) {
	o := &redis.UniversalOptions{}
	var (
		endpoints  []string
		useTLS     bool
		serverName string
		errs       []error
	)
	ms := func(k, v string, ps ...*time.Duration) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("option %s=%q: want milliseconds", k, v))
		}
		for _, p := range ps {
			*p = time.Duration(n) * time.Millisecond
		}
	}
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, isOption := strings.Cut(part, "=")
		if !isOption {
			endpoints = append(endpoints, part)
			continue
		}
		switch key := strings.ToLower(strings.TrimSpace(k)); key {
		case "password":
			o.Password = v
		case "user":
			o.Username = v
		case "ssl":
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("option ssl=%q: want true or false", v))
			}
			useTLS = b
		case "sslhost":
			serverName = strings.TrimSpace(v)
		case "defaultdatabase":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("option defaultDatabase=%q: want a number", v))
			}
			o.DB = n
		case "servicename":
			o.MasterName = strings.TrimSpace(v)
		case "name":
			o.ClientName = strings.TrimSpace(v)
		case "connecttimeout":
			ms(k, v, &o.DialTimeout)
		case "synctimeout":
			ms(k, v, &o.ReadTimeout, &o.WriteTimeout)
		case "protocol":
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "resp2":
				o.Protocol = 2
			case "resp3":
				o.Protocol = 3
			default:
				errs = append(errs, fmt.Errorf("option protocol=%q: want resp2 or resp3", v))
			}
		default:
			if !stackExchangeIgnored[key] {
				errs = append(errs, fmt.Errorf("unknown option %q", strings.TrimSpace(k)))
			}
		}
	}
	if len(endpoints) == 0 {
		errs = append(errs, errors.New("no host:port in the connection string"))
	}
	defPort := "6379"
	if useTLS {
		defPort = "6380" // StackExchange.Redis' default for ssl=true (Azure Cache for Redis)
		o.TLSConfig = newTLS()
		o.TLSConfig.ServerName = serverName
	}
	for _, e := range endpoints {
		addr, err := hostPort(e, defPort)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.Addrs = append(o.Addrs, addr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// Describe summarises o for a start-up log line, without secrets:
// mode, addresses, user, database, TLS.
func Describe(o *redis.UniversalOptions) string {
	mode := "single"
	switch {
	case o.MasterName != "":
		mode = "sentinel master=" + o.MasterName
	case len(o.Addrs) > 1 || o.IsClusterMode:
		mode = "cluster"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s addrs=%s db=%d", mode, strings.Join(o.Addrs, ","), o.DB)
	if o.Username != "" {
		fmt.Fprintf(&b, " user=%s", o.Username)
	}
	if o.Password != "" {
		b.WriteString(" password=set")
	}
	if o.TLSConfig != nil {
		b.WriteString(" tls")
		if o.TLSConfig.InsecureSkipVerify {
			b.WriteString("(insecure)")
		}
	}
	return b.String()
}
