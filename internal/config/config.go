// SPDX-License-Identifier: Apache-2.0

// Package config defines the service configuration: every setting has a
// documented default, an environment variable and a command-line flag (flags win
// over the environment). Load validates strictly: an unparsable value is an
// error naming the variable, never a silent default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the whole service configuration.
type Config struct {
	ListenAddr      string
	HealthAddr      string // optional second listener for the health paths only
	PathPrefix      string // extra mount point of the API, e.g. /exchangelistener
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
	MaxRequestBytes int64
	MaxSendBytes    int64
	BodyTimeout     time.Duration
	MaxConnections  int
	AllowedHosts    string // comma-separated Host names the API answers; empty: any
	// Network allow-lists (netguard.Parse syntax); empty: any address.
	CallbackNetworks string
	MailNetworks     string
	ProbeConcurrency int

	ValidateTimeout     time.Duration
	IMAPDialTimeout     time.Duration
	IMAPCommandTimeout  time.Duration
	IMAPIdleMax         time.Duration
	IMAPFolderPoll      time.Duration
	IMAPDialConcurrency int
	IMAPDialRate        float64 // connections per second per mail server host; 0 = unlimited
	IMAPTLSInsecure     bool
	IMAPTLSCAFile       string
	MaxMessageBytes     int64
	MaxInflightBytes    int64
	MaxAttachmentBytes  int64

	HistoryConcurrency int
	DeliveryPerHost    int
	DeliveryTimeout    time.Duration
	DeliveryMaxBackoff time.Duration
	ReconnectMaxDelay  time.Duration
	AuthRetryMin       time.Duration
	AuthRetryMax       time.Duration
	TokenRefreshWait   time.Duration
	AppendSent         string

	// Exchange (EWS).
	EWSAuth                  string // auto, basic or ntlm
	EWSVersion               string // RequestServerVersion
	EWSTimeout               time.Duration
	EWSHeartbeatTimeout      time.Duration
	EWSImpersonationUser     string
	EWSImpersonationPassword Secret
	EWSGroupSize             int
	EWSAutodiscoverURLs      string // comma-separated
	EWSCategory              string
	EWSClockSkew             time.Duration

	// Exchange Online (Microsoft 365) after EWS.
	ExchangeOnline       string // auto, graph, imap or ews
	ExchangeOnlineHosts  string // comma-separated ServiceUrl hosts, "*.suffix" allowed
	ExchangeOnlineIMAP   string // host:port
	ExchangeOnlineSMTP   string // host:port
	GraphTenantID        string
	GraphClientID        string
	GraphClientSecret    Secret
	GraphSecretFile      string
	GraphURL             string
	GraphLoginURL        string
	GraphPollInterval    time.Duration
	GraphNotificationURL string

	// Redis-backed clustering (issue #4). Any of RedisURL, RedisConnection and
	// RedisHost selects Redis (UsesRedis), in that order of precedence; none
	// means the embedded memory store. The store package turns them into client
	// options (store.RedisConfig, store.RedisOptionsFromConfig).
	RedisURL         Secret // EL_REDIS_URL; may embed a password
	RedisConnection  Secret // EL_REDIS_CONNECTION, Redis__Connection or RedisConnection (StackExchange style)
	RedisHost        string // ExchangeListenerRedisHost, host:port
	RedisDatabase    int    // ExchangeListenerRedisDatabase, with RedisHost
	RedisPassword    Secret // ExchangeListenerRedisPassword
	RedisTLSCAFile   string
	RedisTLSInsecure bool
	RedisPrefix      string // key prefix, default "el:"

	// Credentials at rest: a 32-byte AES key as base64 (SecretKey) or in a file
	// (SecretKeyFile, base64 or raw); see secret.LoadKey.
	SecretKey             Secret
	SecretKeyFile         string
	AllowPlaintextSecrets bool // run against Redis without a key (credentials stored unencrypted)

	// NodeID names this node in the cluster (EL_NODE_ID); Load defaults it to
	// the PodName variable (Kubernetes StatefulSet pods), else the host name.
	NodeID string
	// Pprof serves net/http/pprof at /debug/pprof/.
	Pprof bool
	// AdminToken, when set, guards the dashboard (/ui/), /api/cluster and
	// /debug/pprof/ (EL_ADMIN_TOKEN).
	AdminToken Secret
	// APITokens are the bearer tokens of the native API (/v1/): comma-separated
	// "name:token" or bare tokens (EL_API_TOKENS); empty disables the API.
	APITokens Secret
	// PublicURL is the service's address as webhook receivers reach it, the
	// base of the links in native events (EL_PUBLIC_URL); empty: the links
	// are paths ("/v1/...").
	PublicURL string
	// MaxSubscriptions caps the mailboxes one node serves (its capacity, and
	// its placement weight in a cluster).
	MaxSubscriptions int
}

// Secret is a setting that must never be printed: String, GoString,
// MarshalText and LogValue redact it. Read it with Reveal.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String redacts a non-empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText redacts, for JSON or YAML dumps of the configuration.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Setting describes one configuration knob, for flags, env and documentation.
type Setting struct {
	Flag    string
	Env     string
	Default string
	Help    string
	set     func(c *Config, v string) error
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

// secret never fails, so that no error message can ever quote a secret.
func secret(p func(*Config) *Secret) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = Secret(v); return nil }
}

func dur(p func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("want a duration like 30s or 5m")
		}
		*p(c) = d
		return nil
	}
}

func integer(p func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a non-negative integer")
		}
		*p(c) = n
		return nil
	}
}

func number(p func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
			return fmt.Errorf("want a non-negative number")
		}
		*p(c) = n
		return nil
	}
}

func size(p func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		*p(c) = n
		return nil
	}
}

func boolean(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		*p(c) = b
		return nil
	}
}

// Settings lists every setting in documentation order.
var Settings = []Setting{
	{"listen-addr", "EL_LISTEN_ADDR", ":10000", "HTTP listen address of the API and /metrics", str(func(c *Config) *string { return &c.ListenAddr })},
	{"health-listen-addr", "EL_HEALTH_LISTEN_ADDR", "", "optional second address serving only the health paths (/api/listeners/status, /api/listeners/exists, /readyz, /metrics), e.g. :10001 for the Kubernetes probes: a flood of API clients cannot fill it", str(func(c *Config) *string { return &c.HealthAddr })},
	{"path-prefix", "EL_PATH_PREFIX", "", "also serve the API under this path prefix (ingress path), e.g. /exchangelistener", str(func(c *Config) *string { return &c.PathPrefix })},
	{"log-level", "EL_LOG_LEVEL", "info", "debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
	{"log-format", "EL_LOG_FORMAT", "text", "text or json", str(func(c *Config) *string { return &c.LogFormat })},
	{"pprof", "EL_PPROF", "false", "serve Go's profiles at /debug/pprof/ on the API port, for diagnosing CPU and memory use; exposes internals, keep it off in production", boolean(func(c *Config) *bool { return &c.Pprof })},
	{"", "EL_ADMIN_TOKEN", "", "token the dashboard (/ui/), /api/cluster and /debug/pprof/ require (Authorization: Bearer <token>, or open /ui/?token=<token> once); they show mailbox addresses and internals, set it wherever others reach the port (empty: no token); environment only", secret(func(c *Config) *Secret { return &c.AdminToken })},
	{"public-url", "EL_PUBLIC_URL", "", "the service's base URL as native API clients reach it (e.g. https://mail-sync.example.com), prefixed to the attachment links in webhook events (empty: the links are paths, /v1/...)", str(func(c *Config) *string { return &c.PublicURL })},
	{"", "EL_API_TOKENS", "", "bearer tokens of the native API (/v1/, for clients other than Creatio), comma-separated, each name:token[:scope[:prefix]] (scope read: GET only, or write; prefix: the token reaches only accounts whose id starts with it) or a bare token (empty: the native API answers 503); environment only", secret(func(c *Config) *Secret { return &c.APITokens })},
	{"shutdown-timeout", "EL_SHUTDOWN_TIMEOUT", "20s", "grace period on SIGTERM for in-flight requests and deliveries", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"max-request-bytes", "EL_MAX_REQUEST_BYTES", "1MiB", "largest request body of every API route but send (Creatio sends one credentials object; close and subscriptionsstate take up to 100,000 ids in at least 4 MiB)", size(func(c *Config) *int64 { return &c.MaxRequestBytes })},
	{"max-send-bytes", "EL_MAX_SEND_BYTES", "48MiB", "largest send request body, attachments included as base64 (about 35 MB of files); its size is taken from EL_MAX_INFLIGHT_BYTES while it is sent", size(func(c *Config) *int64 { return &c.MaxSendBytes })},
	{"request-body-timeout", "EL_REQUEST_BODY_TIMEOUT", "30s", "time a client has to send a request body (send: 4 times this); slower clients get 408", dur(func(c *Config) *time.Duration { return &c.BodyTimeout })},
	{"max-connections", "EL_MAX_CONNECTIONS", "1024", "open API connections served at once; 32 more are kept for the health paths, beyond that a connection gets 503", integer(func(c *Config) *int { return &c.MaxConnections })},
	{"allowed-hosts", "EL_ALLOWED_HOSTS", "", "comma-separated host names the API answers to (Host header), e.g. emaillistener,emaillistener.crm.svc; others get 421; the health paths answer any (empty: any host)", str(func(c *Config) *string { return &c.AllowedHosts })},
	{"callback-networks", "EL_CALLBACK_NETWORKS", "", "networks the service may send callbacks and availability checks to, e.g. 10.20.0.0/16,192.168.5.10 (empty: any); checked on the resolved address", str(func(c *Config) *string { return &c.CallbackNetworks })},
	{"mail-networks", "EL_MAIL_NETWORKS", "", "networks of the mail servers the service may connect to (IMAP, SMTP), same syntax (empty: any)", str(func(c *Config) *string { return &c.MailNetworks })},
	{"probe-concurrency", "EL_PROBE_CONCURRENCY", "16", "validate, folders and availability checks running at once; more wait up to 5 s, then get 503", integer(func(c *Config) *int { return &c.ProbeConcurrency })},
	{"validate-timeout", "EL_VALIDATE_TIMEOUT", "20s", "budget of validate and folders calls (Creatio waits for them in the UI)", dur(func(c *Config) *time.Duration { return &c.ValidateTimeout })},
	{"imap-dial-timeout", "EL_IMAP_DIAL_TIMEOUT", "30s", "connect + TLS + login budget per attempt", dur(func(c *Config) *time.Duration { return &c.IMAPDialTimeout })},
	{"imap-command-timeout", "EL_IMAP_COMMAND_TIMEOUT", "60s", "budget for one IMAP command (FETCH of a large message included)", dur(func(c *Config) *time.Duration { return &c.IMAPCommandTimeout })},
	{"imap-idle-max", "EL_IMAP_IDLE_MAX", "10m", "re-issue IDLE and re-check the folder after this long (max 29m, RFC 2177); bounds the delay if a server loses a push", dur(func(c *Config) *time.Duration { return &c.IMAPIdleMax })},
	{"imap-folder-poll", "EL_IMAP_FOLDER_POLL", "60s", "STATUS check interval for watched folders other than INBOX", dur(func(c *Config) *time.Duration { return &c.IMAPFolderPoll })},
	{"imap-dial-concurrency", "EL_IMAP_DIAL_CONCURRENCY", "64", "simultaneous connection attempts per mail server host", integer(func(c *Config) *int { return &c.IMAPDialConcurrency })},
	{"imap-dial-rate", "EL_IMAP_DIAL_RATE", "0", "most new connections per second per mail server host, e.g. 20 for a server that throttles logins (0 = no limit; EL_IMAP_DIAL_CONCURRENCY still applies)", number(func(c *Config) *float64 { return &c.IMAPDialRate })},
	{"imap-tls-insecure", "EL_IMAP_TLS_INSECURE", "false", "accept any mail server certificate (self-signed, expired); unsafe", boolean(func(c *Config) *bool { return &c.IMAPTLSInsecure })},
	{"imap-tls-ca-file", "EL_IMAP_TLS_CA_FILE", "", "PEM file with extra CA certificates to trust for mail servers", str(func(c *Config) *string { return &c.IMAPTLSCAFile })},
	{"max-message-bytes", "EL_MAX_MESSAGE_BYTES", "64MiB", "larger messages are delivered with headers only", size(func(c *Config) *int64 { return &c.MaxMessageBytes })},
	{"max-inflight-bytes", "EL_MAX_INFLIGHT_BYTES", "64MiB", "raw bytes of messages being fetched, parsed and delivered at once, node-wide; a message takes several times its size in memory meanwhile, so this bounds memory when large mail arrives in many mailboxes together (a larger message runs alone)", size(func(c *Config) *int64 { return &c.MaxInflightBytes })},
	{"max-attachment-bytes", "EL_MAX_ATTACHMENT_BYTES", "0", "larger attachments are delivered without content (0 = no limit)", size(func(c *Config) *int64 { return &c.MaxAttachmentBytes })},
	{"history-concurrency", "EL_HISTORY_CONCURRENCY", "4", "history loads (synchronize) running at once; each uses its own connection", integer(func(c *Config) *int { return &c.HistoryConcurrency })},
	{"delivery-per-host", "EL_DELIVERY_PER_HOST", "32", "concurrent ProcessFullEmail requests per Creatio host", integer(func(c *Config) *int { return &c.DeliveryPerHost })},
	{"delivery-timeout", "EL_DELIVERY_TIMEOUT", "120s", "timeout of one request to Creatio", dur(func(c *Config) *time.Duration { return &c.DeliveryTimeout })},
	{"delivery-max-backoff", "EL_DELIVERY_MAX_BACKOFF", "60s", "longest wait between delivery retries while Creatio fails", dur(func(c *Config) *time.Duration { return &c.DeliveryMaxBackoff })},
	{"token-refresh-wait", "EL_TOKEN_REFRESH_WAIT", "60s", "after an OAuth token is rejected, how long to wait for Creatio's update before reporting the failure", dur(func(c *Config) *time.Duration { return &c.TokenRefreshWait })},
	{"append-sent", "EL_APPEND_SENT", "auto", "file mail sent through the service in the IMAP Sent folder: auto (not for Gmail/Microsoft, which do it themselves), always, never", str(func(c *Config) *string { return &c.AppendSent })},
	{"ews-auth", "EL_EWS_AUTH", "auto", "how Exchange (EWS) passwords are sent: auto (NTLM when the server offers it, else Basic), basic or ntlm; OAuth mailboxes always send their token", str(func(c *Config) *string { return &c.EWSAuth })},
	{"ews-version", "EL_EWS_VERSION", "Exchange2013_SP1", "EWS schema version requested (RequestServerVersion), Exchange2010_SP1 or later", str(func(c *Config) *string { return &c.EWSVersion })},
	{"ews-timeout", "EL_EWS_TIMEOUT", "60s", "budget of one EWS request (a GetItem of a large message included); streams are bounded by the heartbeat timeout instead", dur(func(c *Config) *time.Duration { return &c.EWSTimeout })},
	{"ews-heartbeat-timeout", "EL_EWS_HEARTBEAT_TIMEOUT", "90s", "an EWS notification stream silent for this long is taken for dead and re-opened (Exchange sends a heartbeat at least every 45 s)", dur(func(c *Config) *time.Duration { return &c.EWSHeartbeatTimeout })},
	{"ews-impersonation-user", "EL_EWS_IMPERSONATION_USER", "", "an Exchange account with the ApplicationImpersonation role; when set, it holds the notification streams, up to EL_EWS_GROUP_SIZE mailboxes per connection instead of one connection per mailbox", str(func(c *Config) *string { return &c.EWSImpersonationUser })},
	{"", "EL_EWS_IMPERSONATION_PASSWORD", "", "password of EL_EWS_IMPERSONATION_USER (environment only)", secret(func(c *Config) *Secret { return &c.EWSImpersonationPassword })},
	{"ews-group-size", "EL_EWS_GROUP_SIZE", "200", "mailboxes per shared EWS notification stream with impersonation (1–200, Exchange's limit)", integer(func(c *Config) *int { return &c.EWSGroupSize })},
	{"ews-autodiscover-url", "EL_EWS_AUTODISCOVER_URL", "", "comma-separated Autodiscover URLs to ask instead of the ones derived from the mailbox's domain (an internal autodiscover host)", str(func(c *Config) *string { return &c.EWSAutodiscoverURLs })},
	{"ews-category", "EL_EWS_CATEGORY", "Creatio", "category given to delivered Exchange items when the mailbox has MarkEmailsAsSynchronized on", str(func(c *Config) *string { return &c.EWSCategory })},
	{"ews-clock-skew", "EL_EWS_CLOCK_SKEW", "1m", "a new Exchange subscription also delivers mail that arrived this long before it started, against clock differences between this host and Exchange", dur(func(c *Config) *time.Duration { return &c.EWSClockSkew })},
	{"exchange-online", "EL_EXCHANGE_ONLINE", "auto", "how Exchange-type mailboxes on Exchange Online are reached now that Microsoft switches EWS off there: auto (Graph with app credentials or a Graph token, else IMAP/SMTP with XOAUTH2 when the token has IMAP scopes), graph, imap, or ews (tenants on Microsoft's EWS allow list, until 2027-04-01)", str(func(c *Config) *string { return &c.ExchangeOnline })},
	{"exchange-online-hosts", "EL_EXCHANGE_ONLINE_HOSTS", "outlook.office365.com,outlook.office.com,*.outlook.com", "ServiceUrl hosts that are Exchange Online (comma-separated; *.suffix matches subdomains)", str(func(c *Config) *string { return &c.ExchangeOnlineHosts })},
	{"exchange-online-imap", "EL_EXCHANGE_ONLINE_IMAP", "outlook.office365.com:993", "Exchange Online's IMAP endpoint (implicit TLS) for mailboxes routed to IMAP", str(func(c *Config) *string { return &c.ExchangeOnlineIMAP })},
	{"exchange-online-smtp", "EL_EXCHANGE_ONLINE_SMTP", "smtp.office365.com:587", "Exchange Online's SMTP submission endpoint (STARTTLS) for mailboxes routed to IMAP", str(func(c *Config) *string { return &c.ExchangeOnlineSMTP })},
	{"graph-tenant-id", "EL_GRAPH_TENANT_ID", "", "Microsoft Entra tenant (id or domain) of the Graph application", str(func(c *Config) *string { return &c.GraphTenantID })},
	{"graph-client-id", "EL_GRAPH_CLIENT_ID", "", "application (client) id of the Graph application; with a secret it serves every Exchange Online mailbox of the tenant (application permissions Mail.ReadWrite, Mail.Send)", str(func(c *Config) *string { return &c.GraphClientID })},
	{"", "EL_GRAPH_CLIENT_SECRET", "", "client secret of the Graph application (environment only)", secret(func(c *Config) *Secret { return &c.GraphClientSecret })},
	{"graph-client-secret-file", "EL_GRAPH_CLIENT_SECRET_FILE", "", "file holding the client secret (a Kubernetes secret mount); instead of EL_GRAPH_CLIENT_SECRET", str(func(c *Config) *string { return &c.GraphSecretFile })},
	{"graph-url", "EL_GRAPH_URL", "https://graph.microsoft.com/v1.0", "Microsoft Graph endpoint (national clouds; http:// accepted for tests and internal proxies)", str(func(c *Config) *string { return &c.GraphURL })},
	{"graph-login-url", "EL_GRAPH_LOGIN_URL", "https://login.microsoftonline.com", "identity endpoint; the token URL is <login>/<tenant>/oauth2/v2.0/token", str(func(c *Config) *string { return &c.GraphLoginURL })},
	{"graph-poll-interval", "EL_GRAPH_POLL_INTERVAL", "30s", "how often Graph mailboxes are checked for new mail (delta queries, 20 per $batch request); with a notification URL, every 10 intervals as a safety net", dur(func(c *Config) *time.Duration { return &c.GraphPollInterval })},
	{"graph-notification-url", "EL_GRAPH_NOTIFICATION_URL", "", "public https URL Graph posts change notifications to; the service answers on that URL's path on its API port (empty: polling)", str(func(c *Config) *string { return &c.GraphNotificationURL })},
	{"reconnect-max-delay", "EL_RECONNECT_MAX_DELAY", "5m", "longest wait between reconnects to a failing mail server", dur(func(c *Config) *time.Duration { return &c.ReconnectMaxDelay })},
	{"auth-retry-min", "EL_AUTH_RETRY_MIN", "5m", "after the mail server rejects a password, the first wait before the same credentials are tried again (doubling up to EL_AUTH_RETRY_MAX), so that retries never lock the account; new credentials are tried at once", dur(func(c *Config) *time.Duration { return &c.AuthRetryMin })},
	{"auth-retry-max", "EL_AUTH_RETRY_MAX", "1h", "longest wait between tries of rejected credentials", dur(func(c *Config) *time.Duration { return &c.AuthRetryMax })},
	// Redis and clustering. Secrets without a flag are read from the environment
	// only: a command line is visible to every user of the host (ps).
	{"redis-url", "EL_REDIS_URL", "", "Redis for clustering: redis:// or rediss:// (TLS) URL [user:password@]host:port[/db]; several hosts (host1:port,host2:port) mean Redis Cluster, ?master_name= Sentinel; wins over the settings below", secret(func(c *Config) *Secret { return &c.RedisURL })},
	{"redis-connection", "EL_REDIS_CONNECTION", "", "Redis as a StackExchange.Redis connection string host:port,password=…,user=…,ssl=true,defaultDatabase=N (also read from Redis__Connection or RedisConnection); used when EL_REDIS_URL is empty", secret(func(c *Config) *Secret { return &c.RedisConnection })},
	{"redis-host", "ExchangeListenerRedisHost", "", "the original service's Redis host:port, used when EL_REDIS_URL and EL_REDIS_CONNECTION are empty", str(func(c *Config) *string { return &c.RedisHost })},
	{"redis-database", "ExchangeListenerRedisDatabase", "0", "Redis database number for ExchangeListenerRedisHost", integer(func(c *Config) *int { return &c.RedisDatabase })},
	{"", "ExchangeListenerRedisPassword", "", "Redis password for ExchangeListenerRedisHost; also used by EL_REDIS_URL or EL_REDIS_CONNECTION when they carry none (environment only)", secret(func(c *Config) *Secret { return &c.RedisPassword })},
	{"redis-tls-ca-file", "EL_REDIS_TLS_CA_FILE", "", "PEM file with extra CA certificates to trust for Redis (with rediss:// or ssl=true)", str(func(c *Config) *string { return &c.RedisTLSCAFile })},
	{"redis-tls-insecure", "EL_REDIS_TLS_INSECURE", "false", "accept any Redis server certificate; unsafe", boolean(func(c *Config) *bool { return &c.RedisTLSInsecure })},
	{"redis-prefix", "EL_REDIS_PREFIX", "el:", "prefix of every Redis key, to share a database (no { or })", str(func(c *Config) *string { return &c.RedisPrefix })},
	{"", "EL_SECRET_KEY", "", "base64 of a 32-byte AES-256 key sealing mailbox credentials in Redis (openssl rand -base64 32); environment only", secret(func(c *Config) *Secret { return &c.SecretKey })},
	{"secret-key-file", "EL_SECRET_KEY_FILE", "", "file holding the key as base64 or 32 raw bytes (a Kubernetes secret mount); instead of EL_SECRET_KEY", str(func(c *Config) *string { return &c.SecretKeyFile })},
	{"allow-plaintext-secrets", "EL_ALLOW_PLAINTEXT_SECRETS", "false", "start against Redis without EL_SECRET_KEY/EL_SECRET_KEY_FILE, keeping credentials unencrypted; unsafe", boolean(func(c *Config) *bool { return &c.AllowPlaintextSecrets })},
	{"max-subscriptions", "EL_MAX_SUBSCRIPTIONS", "10000", "most mailboxes this node serves; in a cluster also its share of the mailboxes (placement weight)", integer(func(c *Config) *int { return &c.MaxSubscriptions })},
	{"node-id", "EL_NODE_ID", "", "this node's name in the cluster; empty: the PodName variable, else the host name", str(func(c *Config) *string { return &c.NodeID })},
}

// envAliases are further variables a setting is read from when its own is
// unset: the names of the original service's Helm chart.
var envAliases = map[string][]string{
	"EL_REDIS_CONNECTION": {"Redis__Connection", "RedisConnection"},
}

// hostname is os.Hostname, replaceable in tests.
var hostname = os.Hostname

// Default returns the configuration with every default applied.
func Default() Config {
	var c Config
	for _, s := range Settings {
		if err := s.set(&c, s.Default); err != nil {
			panic(fmt.Sprintf("config: bad default for %s: %v", s.Env, err))
		}
	}
	return c
}

// Load builds the configuration from defaults, then getenv, then args (flags).
func Load(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	c := Default()
	var errs []error
	for _, s := range Settings {
		name, v := s.Env, strings.TrimSpace(getenv(s.Env))
		for _, alias := range envAliases[s.Env] {
			if v == "" {
				name, v = alias, strings.TrimSpace(getenv(alias))
			}
		}
		if v != "" {
			if err := s.set(&c, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	for _, s := range Settings {
		if s.Flag == "" {
			continue // a secret: environment only
		}
		fs.Func(s.Flag, s.Help+" (env "+s.Env+", default "+strconv.Quote(s.Default)+")", func(v string) error { return s.set(&c, v) })
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	if c.NodeID == "" {
		c.NodeID = strings.TrimSpace(getenv("PodName"))
	}
	if c.NodeID == "" {
		c.NodeID, _ = hostname() // empty on failure; Validate reports it when it matters
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate checks cross-field rules.
func (c Config) Validate() error {
	var errs []error
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("EL_LISTEN_ADDR must not be empty"))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			errs = append(errs, fmt.Errorf("EL_PUBLIC_URL %q must be an absolute http(s) URL without credentials", c.PublicURL))
		}
	}
	if c.PathPrefix != "" && (!strings.HasPrefix(c.PathPrefix, "/") || c.PathPrefix == "/") {
		errs = append(errs, fmt.Errorf("EL_PATH_PREFIX %q must start with / and not be /", c.PathPrefix))
	}
	switch strings.ToLower(c.LogFormat) {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("EL_LOG_FORMAT %q: want text or json", c.LogFormat))
	}
	if c.IMAPIdleMax > 29*time.Minute || c.IMAPIdleMax < time.Second {
		errs = append(errs, fmt.Errorf("EL_IMAP_IDLE_MAX %v: want between 1s and 29m", c.IMAPIdleMax))
	}
	switch strings.ToLower(c.EWSAuth) {
	case "auto", "basic", "ntlm":
	default:
		errs = append(errs, fmt.Errorf("EL_EWS_AUTH %q: want auto, basic or ntlm", c.EWSAuth))
	}
	if c.EWSGroupSize < 1 || c.EWSGroupSize > 200 {
		errs = append(errs, fmt.Errorf("EL_EWS_GROUP_SIZE %d: want 1 to 200", c.EWSGroupSize))
	}
	if c.EWSHeartbeatTimeout < time.Second {
		errs = append(errs, errors.New("EL_EWS_HEARTBEAT_TIMEOUT must be at least 1s"))
	}
	if c.EWSTimeout < time.Second {
		errs = append(errs, errors.New("EL_EWS_TIMEOUT must be at least 1s"))
	}
	if c.GraphClientSecret != "" && c.GraphSecretFile != "" {
		errs = append(errs, errors.New("set EL_GRAPH_CLIENT_SECRET or EL_GRAPH_CLIENT_SECRET_FILE, not both"))
	}
	if c.GraphClientID != "" && c.GraphTenantID == "" {
		errs = append(errs, errors.New("EL_GRAPH_CLIENT_ID needs EL_GRAPH_TENANT_ID"))
	}
	if c.GraphClientID != "" && c.GraphClientSecret == "" && c.GraphSecretFile == "" {
		errs = append(errs, errors.New("EL_GRAPH_CLIENT_ID needs EL_GRAPH_CLIENT_SECRET or EL_GRAPH_CLIENT_SECRET_FILE"))
	}
	if u := c.GraphNotificationURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		errs = append(errs, errors.New("EL_GRAPH_NOTIFICATION_URL must be an http(s) URL"))
	}
	if c.GraphPollInterval < time.Second {
		errs = append(errs, errors.New("EL_GRAPH_POLL_INTERVAL must be at least 1s"))
	}
	if (c.EWSImpersonationUser == "") != (c.EWSImpersonationPassword == "") {
		errs = append(errs, errors.New("set both EL_EWS_IMPERSONATION_USER and EL_EWS_IMPERSONATION_PASSWORD, or neither"))
	}
	switch c.AppendSent {
	case "auto", "always", "never":
	default:
		errs = append(errs, fmt.Errorf("EL_APPEND_SENT %q: want auto, always or never", c.AppendSent))
	}
	if c.DeliveryPerHost < 1 {
		errs = append(errs, errors.New("EL_DELIVERY_PER_HOST must be at least 1"))
	}
	if c.MaxInflightBytes < 1<<20 {
		errs = append(errs, errors.New("EL_MAX_INFLIGHT_BYTES must be at least 1MiB"))
	}
	if c.MaxRequestBytes < 64<<10 {
		errs = append(errs, errors.New("EL_MAX_REQUEST_BYTES must be at least 64KiB"))
	}
	if c.MaxSendBytes < 1<<20 {
		errs = append(errs, errors.New("EL_MAX_SEND_BYTES must be at least 1MiB"))
	}
	if c.BodyTimeout < time.Second {
		errs = append(errs, errors.New("EL_REQUEST_BODY_TIMEOUT must be at least 1s"))
	}
	if c.MaxConnections < 1 {
		errs = append(errs, errors.New("EL_MAX_CONNECTIONS must be at least 1"))
	}
	if c.ProbeConcurrency < 1 {
		errs = append(errs, errors.New("EL_PROBE_CONCURRENCY must be at least 1"))
	}
	if c.AuthRetryMin <= 0 || c.AuthRetryMax < c.AuthRetryMin {
		errs = append(errs, fmt.Errorf("EL_AUTH_RETRY_MIN (%v) must be positive and at most EL_AUTH_RETRY_MAX (%v)", c.AuthRetryMin, c.AuthRetryMax))
	}
	if c.IMAPDialConcurrency < 1 {
		errs = append(errs, errors.New("EL_IMAP_DIAL_CONCURRENCY must be at least 1"))
	}
	if strings.ContainsAny(c.RedisPrefix, "{}") {
		errs = append(errs, fmt.Errorf("EL_REDIS_PREFIX %q must not contain { or } (they would break Redis Cluster hash tags)", c.RedisPrefix))
	}
	if c.SecretKey != "" && c.SecretKeyFile != "" {
		errs = append(errs, errors.New("set EL_SECRET_KEY or EL_SECRET_KEY_FILE, not both"))
	}
	if c.UsesRedis() {
		if c.SecretKey == "" && c.SecretKeyFile == "" && !c.AllowPlaintextSecrets {
			errs = append(errs, errors.New("no EL_SECRET_KEY or EL_SECRET_KEY_FILE set while Redis is configured: "+
				"mailbox passwords would be stored unencrypted (set EL_ALLOW_PLAINTEXT_SECRETS=true to accept that)"))
		}
		if c.NodeID == "" {
			errs = append(errs, errors.New("EL_NODE_ID is empty and neither PodName nor the host name is available"))
		}
	}
	return errors.Join(errs...)
}

// AllowedHostList returns AllowedHosts split at commas.
func (c Config) AllowedHostList() []string {
	var out []string
	for _, f := range strings.Split(c.AllowedHosts, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// UsesRedis reports whether a Redis connection is configured (EL_REDIS_URL,
// EL_REDIS_CONNECTION or ExchangeListenerRedisHost); otherwise the service runs
// on the embedded memory store.
func (c Config) UsesRedis() bool {
	return c.RedisURL != "" || c.RedisConnection != "" || c.RedisHost != ""
}

// ParseSize parses a byte size such as 1024, 512KiB, 64MiB, 1GB.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size like 1048576, 512KiB or 64MiB")
	}
	return n * mult, nil
}

// GraphApp reports whether Microsoft Graph application credentials are
// configured (tenant, client id, and a secret or secret file).
func (c *Config) GraphApp() bool {
	return c.GraphTenantID != "" && c.GraphClientID != "" && (c.GraphClientSecret != "" || c.GraphSecretFile != "")
}

// maxSecretFile bounds a secret file: secrets are short, and a wrong path
// (a log, a device) must not be read whole.
const maxSecretFile = 64 << 10

// GraphSecret returns the Graph client secret, from EL_GRAPH_CLIENT_SECRET or
// the file EL_GRAPH_CLIENT_SECRET_FILE names (surrounding white space
// removed: mounted secrets often end with a newline).
func (c *Config) GraphSecret() (Secret, error) {
	if c.GraphSecretFile == "" {
		return c.GraphClientSecret, nil
	}
	f, err := os.Open(c.GraphSecretFile)
	if err != nil {
		return "", fmt.Errorf("EL_GRAPH_CLIENT_SECRET_FILE: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("EL_GRAPH_CLIENT_SECRET_FILE: %w", err)
	case len(raw) > maxSecretFile:
		return "", fmt.Errorf("EL_GRAPH_CLIENT_SECRET_FILE: larger than %d bytes", maxSecretFile)
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "", errors.New("EL_GRAPH_CLIENT_SECRET_FILE: the file is empty")
	}
	return Secret(s), nil
}
