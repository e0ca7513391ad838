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
	"strconv"
	"strings"
	"time"
)

// Config is the whole service configuration.
type Config struct {
	ListenAddr      string
	PathPrefix      string // extra mount point of the API, e.g. /exchangelistener
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
	MaxRequestBytes int64

	ValidateTimeout     time.Duration
	IMAPDialTimeout     time.Duration
	IMAPCommandTimeout  time.Duration
	IMAPIdleMax         time.Duration
	IMAPFolderPoll      time.Duration
	IMAPDialConcurrency int
	IMAPTLSInsecure     bool
	IMAPTLSCAFile       string
	MaxMessageBytes     int64
	MaxAttachmentBytes  int64

	HistoryConcurrency int
	DeliveryPerHost    int
	DeliveryTimeout    time.Duration
	DeliveryMaxBackoff time.Duration
	ReconnectMaxDelay  time.Duration
	TokenRefreshWait   time.Duration
	AppendSent         string
}

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
	{"path-prefix", "EL_PATH_PREFIX", "", "also serve the API under this path prefix (ingress path), e.g. /exchangelistener", str(func(c *Config) *string { return &c.PathPrefix })},
	{"log-level", "EL_LOG_LEVEL", "info", "debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
	{"log-format", "EL_LOG_FORMAT", "text", "text or json", str(func(c *Config) *string { return &c.LogFormat })},
	{"shutdown-timeout", "EL_SHUTDOWN_TIMEOUT", "20s", "grace period on SIGTERM for in-flight requests and deliveries", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"max-request-bytes", "EL_MAX_REQUEST_BYTES", "64MiB", "largest accepted API request body", size(func(c *Config) *int64 { return &c.MaxRequestBytes })},
	{"validate-timeout", "EL_VALIDATE_TIMEOUT", "20s", "budget of validate and folders calls (Creatio waits for them in the UI)", dur(func(c *Config) *time.Duration { return &c.ValidateTimeout })},
	{"imap-dial-timeout", "EL_IMAP_DIAL_TIMEOUT", "30s", "connect + TLS + login budget per attempt", dur(func(c *Config) *time.Duration { return &c.IMAPDialTimeout })},
	{"imap-command-timeout", "EL_IMAP_COMMAND_TIMEOUT", "60s", "budget for one IMAP command (FETCH of a large message included)", dur(func(c *Config) *time.Duration { return &c.IMAPCommandTimeout })},
	{"imap-idle-max", "EL_IMAP_IDLE_MAX", "10m", "re-issue IDLE and re-check the folder after this long (max 29m, RFC 2177); bounds the delay if a server loses a push", dur(func(c *Config) *time.Duration { return &c.IMAPIdleMax })},
	{"imap-folder-poll", "EL_IMAP_FOLDER_POLL", "60s", "STATUS check interval for watched folders other than INBOX", dur(func(c *Config) *time.Duration { return &c.IMAPFolderPoll })},
	{"imap-dial-concurrency", "EL_IMAP_DIAL_CONCURRENCY", "64", "simultaneous connection attempts per mail server host", integer(func(c *Config) *int { return &c.IMAPDialConcurrency })},
	{"imap-tls-insecure", "EL_IMAP_TLS_INSECURE", "false", "accept any mail server certificate (self-signed, expired); unsafe", boolean(func(c *Config) *bool { return &c.IMAPTLSInsecure })},
	{"imap-tls-ca-file", "EL_IMAP_TLS_CA_FILE", "", "PEM file with extra CA certificates to trust for mail servers", str(func(c *Config) *string { return &c.IMAPTLSCAFile })},
	{"max-message-bytes", "EL_MAX_MESSAGE_BYTES", "64MiB", "larger messages are delivered with headers only", size(func(c *Config) *int64 { return &c.MaxMessageBytes })},
	{"max-attachment-bytes", "EL_MAX_ATTACHMENT_BYTES", "0", "larger attachments are delivered without content (0 = no limit)", size(func(c *Config) *int64 { return &c.MaxAttachmentBytes })},
	{"history-concurrency", "EL_HISTORY_CONCURRENCY", "4", "history loads (synchronize) running at once; each uses its own connection", integer(func(c *Config) *int { return &c.HistoryConcurrency })},
	{"delivery-per-host", "EL_DELIVERY_PER_HOST", "32", "concurrent ProcessFullEmail requests per Creatio host", integer(func(c *Config) *int { return &c.DeliveryPerHost })},
	{"delivery-timeout", "EL_DELIVERY_TIMEOUT", "120s", "timeout of one request to Creatio", dur(func(c *Config) *time.Duration { return &c.DeliveryTimeout })},
	{"delivery-max-backoff", "EL_DELIVERY_MAX_BACKOFF", "60s", "longest wait between delivery retries while Creatio fails", dur(func(c *Config) *time.Duration { return &c.DeliveryMaxBackoff })},
	{"token-refresh-wait", "EL_TOKEN_REFRESH_WAIT", "60s", "after an OAuth token is rejected, how long to wait for Creatio's update before reporting the failure", dur(func(c *Config) *time.Duration { return &c.TokenRefreshWait })},
	{"append-sent", "EL_APPEND_SENT", "auto", "file mail sent through the service in the IMAP Sent folder: auto (not for Gmail/Microsoft, which do it themselves), always, never", str(func(c *Config) *string { return &c.AppendSent })},
	{"reconnect-max-delay", "EL_RECONNECT_MAX_DELAY", "5m", "longest wait between reconnects to a failing mail server", dur(func(c *Config) *time.Duration { return &c.ReconnectMaxDelay })},
}

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
		if v := strings.TrimSpace(getenv(s.Env)); v != "" {
			if err := s.set(&c, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", s.Env, v, err))
			}
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	for _, s := range Settings {
		fs.Func(s.Flag, s.Help+" (env "+s.Env+", default "+strconv.Quote(s.Default)+")", func(v string) error { return s.set(&c, v) })
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %v", fs.Args()))
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
	switch c.AppendSent {
	case "auto", "always", "never":
	default:
		errs = append(errs, fmt.Errorf("EL_APPEND_SENT %q: want auto, always or never", c.AppendSent))
	}
	if c.DeliveryPerHost < 1 {
		errs = append(errs, errors.New("EL_DELIVERY_PER_HOST must be at least 1"))
	}
	if c.IMAPDialConcurrency < 1 {
		errs = append(errs, errors.New("EL_IMAP_DIAL_CONCURRENCY must be at least 1"))
	}
	return errors.Join(errs...)
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
