// SPDX-License-Identifier: Apache-2.0

// Command elbench is the reproducible benchmark of the service. It starts everything
// itself on loopback and stops it again: a private Dovecot with hibernation (users
// u0..uN-1@example.com), the testenv Collector as Creatio, and the service built from
// this module and run as a separate process. It registers mailboxes through the real
// HTTP API with Creatio's unquoted-key bodies, waits until all are "exists", measures,
// prints a table and writes the result as JSON.
//
//	go run ./cmd/elbench density    -n 1000 [-tls]
//	go run ./cmd/elbench latency    -n 1000 -rate 50 -duration 20s
//	go run ./cmd/elbench throughput -n 100 -size 30KB -duration 20s
//	go run ./cmd/elbench history    -n 10000 [-size 30KB] [-folders 3]
//	go run ./cmd/elbench failover   -n 3000 [-nodes 3] [-mail 100]
//	go run ./cmd/elbench exchange   -n 1000 [-tls] [-impersonation] -rate 50 -duration 20s [-size 30KB]
//	go run ./cmd/elbench graph      -n 1000 [-poll 30s] [-webhook] -rate 20 -duration 20s
//	go run ./cmd/elbench pairs      -n 1000 -tls [-idle 1m]
//	go run ./cmd/elbench webhooks   -n 1000 -engine self|emailengine -rate 1,50 -duration 60s [-ee-url URL -ee-token T -ee-pid PID]
//
// Every scenario takes -smoke for a tiny run (history: 200 messages), -json FILE (default
// bench-results/<scenario>-<timestamp>.json) and -h for all flags. See docs/BENCHMARKS.md.
//
// Prerequisites: scripts/install-test-deps.sh (Dovecot; fs.inotify.max_user_instances
// >= 8192, without which Dovecot silently polls every 30 s past ~128 connections).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: elbench <density|latency|throughput|history|failover|exchange|graph|pairs|webhooks> [flags]   (elbench <scenario> -h lists the flags)`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	scenario := args[0]
	fs := flag.NewFlagSet("elbench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		co       commonOptions
		jsonOut  = fs.String("json", "", "write the result here (default bench-results/<scenario>-<timestamp>.json)")
		timeout  = fs.Duration("timeout", 30*time.Minute, "abort the whole run after this long")
		quiet    = fs.Bool("q", false, "no progress messages")
		smoke    = fs.Bool("smoke", false, "tiny run (n=20, short windows; history: 200 messages), e.g. for CI")
		settle   = fs.Duration("settle", 0, "wait after all mailboxes exist (density default 5s, latency/throughput 3s, history 1s)")
		duration = fs.Duration("duration", 20*time.Second, "latency/throughput: how long to send")
		drain    = fs.Duration("drain", 0, "latency/throughput: how long to wait for stragglers after sending (default 30s / 60s)")
		trace    = fs.String("trace", "", "latency/throughput/history/webhooks: write a per-message CSV (sent, arrived, latency) here (webhooks: one per rate, -r<rate> added)")
	)
	fs.StringVar(&co.Bin, "bin", "", "prebuilt service binary (default: go build ./cmd/emaillistener into the temp dir)")
	fs.StringVar(&co.WorkDir, "workdir", "", "parent of the temp dir (default $TMPDIR)")
	fs.BoolVar(&co.Keep, "keep", false, "keep the temp dir (service.log, Dovecot log and Maildirs)")
	fs.BoolVar(&co.TLS, "tls", false, "mailboxes use Dovecot's implicit-TLS port (SecureOption 2), CA pinned via EL_IMAP_TLS_CA_FILE (webhooks: always)")
	fs.Func("env", "extra KEY=VALUE for the service (repeatable), e.g. -env EL_DELIVERY_PER_HOST=64", func(v string) error {
		if !strings.Contains(v, "=") {
			return errors.New("want KEY=VALUE")
		}
		co.Env = append(co.Env, v)
		return nil
	})
	fs.StringVar(&co.DovecotConf, "dovecot-conf", "", "extra Dovecot configuration, e.g. 'service imap { client_limit = 100\nservice_count = 0 }'")
	fs.IntVar(&co.Batch, "batch", 1, "mailboxes per create request (Creatio sends 1)")
	fs.IntVar(&co.Parallel, "parallel", 16, "create requests in flight")
	fs.DurationVar(&co.ExistsTimeout, "exists-timeout", 0, "budget for all mailboxes to reach exists (default 60s + 60ms per mailbox)")

	var scenarioFn func(context.Context) (*Result, error)
	switch scenario {
	case "density":
		o := densityOptions{Baseline: time.Second, Idle: 10 * time.Second}
		fs.IntVar(&co.N, "n", 1000, "mailboxes")
		fs.DurationVar(&o.Idle, "idle", o.Idle, "idle CPU measurement window")
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Settle = co, or(*settle, 5*time.Second)
			if *smoke {
				o.Baseline, o.Settle, o.Idle = 200*time.Millisecond, time.Second, time.Second
			}
			return runDensity(ctx, o)
		}
	case "latency":
		o := latencyOptions{Size: 2048}
		fs.IntVar(&co.N, "n", 1000, "mailboxes (each gets its own appender connection)")
		fs.Float64Var(&o.Rate, "rate", 50, "APPENDs per second over all mailboxes")
		fs.Func("size", "message size, e.g. 2KB (default 2048)", sizeFlag(&o.Size))
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Duration, o.Settle, o.Drain, o.Trace = co, *duration, or(*settle, minSettle), or(*drain, 30*time.Second), *trace
			if *smoke {
				o.Rate, o.Duration = 20, 2*time.Second
			}
			if o.Rate <= 0 {
				return nil, errors.New("-rate must be positive")
			}
			return runLatency(ctx, o)
		}
	case "throughput":
		o := throughputOptions{Size: 30000, Workers: 8}
		fs.IntVar(&co.N, "n", 100, "mailboxes (each gets its own appender connection)")
		fs.Func("size", "message size with one base64 attachment, e.g. 30KB (default 30000)", sizeFlag(&o.Size))
		fs.IntVar(&o.Workers, "workers", o.Workers, "parallel closed-loop appenders")
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Duration, o.Settle, o.Drain, o.Trace = co, *duration, or(*settle, minSettle), or(*drain, 60*time.Second), *trace
			if *smoke {
				o.Duration, o.Workers = 2*time.Second, 2
			}
			return runThroughput(ctx, o)
		}
	case "history":
		o := historyOptions{Folders: 3, Filter: defaultHistoryFilter}
		co.N = 1 // one mailbox; -n is the number of messages
		fs.IntVar(&o.Messages, "n", 10000, "messages seeded into the one mailbox (u0@example.com)")
		fs.Func("size", "message size with one base64 attachment, e.g. 30KB (default: ~4 KB, no attachment)", sizeFlag(&o.Size))
		fs.IntVar(&o.Folders, "folders", o.Folders, "folders the messages are spread over (INBOX gets half)")
		fs.StringVar(&o.Filter, "filter", o.Filter, "synchronize Filters")
		fs.DurationVar(&o.LoadTimeout, "load-timeout", 0, "budget from synchronize until all arrived (default 2m + 20ms per message)")
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Settle, o.Trace = co, or(*settle, time.Second), *trace
			if *smoke {
				o.Messages = 200
			}
			if o.Messages < 1 || o.Folders < 1 {
				return nil, errors.New("-n and -folders must be at least 1")
			}
			if o.LoadTimeout == 0 {
				o.LoadTimeout = 2*time.Minute + time.Duration(o.Messages)*20*time.Millisecond
			}
			return runHistory(ctx, o)
		}
	case "failover":
		o := failoverOptions{Nodes: 3, Mail: 100}
		fs.IntVar(&co.N, "n", 3000, "mailboxes over all nodes")
		fs.IntVar(&o.Nodes, "nodes", o.Nodes, "service processes sharing one Redis (at least 2)")
		fs.IntVar(&o.Mail, "mail", o.Mail, "emails appended to the killed node's mailboxes right after the kill")
		fs.DurationVar(&o.Timeout, "failover-timeout", 2*time.Minute, "budget from the kill until the survivors serve everything")
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Settle = co, or(*settle, 5*time.Second)
			if *smoke {
				o.Settle, o.Mail = time.Second, 10
			}
			if o.Nodes < 2 {
				return nil, errors.New("-nodes must be at least 2")
			}
			return runFailover(ctx, o)
		}
	case "exchange":
		o := exchangeOptions{GroupSize: 200, Heartbeat: 45 * time.Second, Idle: 10 * time.Second, Rate: 50, Size: 2048}
		fs.IntVar(&co.N, "n", 1000, "Exchange mailboxes at the fake EWS server (in this process)")
		fs.BoolVar(&o.Impersonation, "impersonation", false, "an impersonation account holds shared streams (EL_EWS_IMPERSONATION_USER)")
		fs.IntVar(&o.GroupSize, "group-size", o.GroupSize, "mailboxes per shared stream with -impersonation")
		fs.DurationVar(&o.Heartbeat, "heartbeat", o.Heartbeat, "the fake's stream keep-alive interval (Exchange: 45s)")
		fs.DurationVar(&o.Idle, "idle", o.Idle, "idle CPU measurement window")
		fs.Float64Var(&o.Rate, "rate", o.Rate, "items per second over all mailboxes (0: no delivery phase)")
		fs.Func("size", "item size, e.g. 30KB (default 2048)", sizeFlag(&o.Size))
		fs.BoolVar(&o.Attachment, "attachment", false, "items carry one base64 attachment filling the size")
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Duration, o.Settle, o.Drain = co, *duration, or(*settle, 5*time.Second), or(*drain, 30*time.Second)
			if *smoke {
				o.Idle, o.Settle, o.Duration, o.Rate = time.Second, time.Second, 2*time.Second, 10
			}
			return runExchange(ctx, o)
		}
	case "pairs":
		o := pairsOptions{Settle: 20 * time.Second, Idle: time.Minute, Gaps: defaultGaps, Spread: 20 * time.Second}
		fs.IntVar(&co.N, "n", 1000, "mailboxes (one pair of mails each)")
		fs.DurationVar(&o.Idle, "idle", o.Idle, "idle window in which the service's writes are counted")
		fs.DurationVar(&o.Spread, "spread", o.Spread, "the pairs' starts are spread over this window")
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Drain = co, or(*drain, 30*time.Second)
			if *settle > 0 {
				o.Settle = *settle
			}
			if *smoke {
				o.Idle, o.Spread = 2*time.Second, time.Second
			}
			return runPairs(ctx, o)
		}
	case "graph":
		o := graphOptions{Poll: 30 * time.Second, Idle: time.Minute, Rate: 20, Size: 2048}
		fs.IntVar(&co.N, "n", 1000, "Exchange Online mailboxes at the fake Graph server (in this process)")
		fs.DurationVar(&o.Poll, "poll", o.Poll, "EL_GRAPH_POLL_INTERVAL")
		fs.BoolVar(&o.Webhook, "webhook", false, "change notifications to the service (EL_GRAPH_NOTIFICATION_URL) instead of polling alone")
		fs.DurationVar(&o.Idle, "idle", o.Idle, "idle window: CPU and Graph requests per mailbox (make it a few poll intervals)")
		fs.Float64Var(&o.Rate, "rate", o.Rate, "messages per second over all mailboxes (0: no delivery phase)")
		fs.Func("size", "message size, e.g. 30KB (default 2048)", sizeFlag(&o.Size))
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Duration, o.Settle, o.Drain = co, *duration, or(*settle, 5*time.Second), or(*drain, 30*time.Second)
			if *smoke {
				o.Poll, o.Idle, o.Settle, o.Duration, o.Rate = time.Second, 3*time.Second, time.Second, 2*time.Second, 10
			}
			return runGraph(ctx, o)
		}
	case "webhooks":
		o := webhooksOptions{Engine: "self", Baseline: 5 * time.Second, Idle: 10 * time.Second, Rates: []float64{1, 50},
			Size: 2048, Folder: "INBOX", EEURL: "http://127.0.0.1:3000", EENotifyText: true}
		fs.IntVar(&co.N, "n", 1000, "accounts (each gets its own appender connection)")
		fs.StringVar(&o.Engine, "engine", o.Engine, "self (this service, started here) or emailengine (started beforehand, see docs/BENCHMARKS.md)")
		fs.Func("rate", "mails per second over all accounts; a comma-separated list runs one phase per rate (default 1,50)", ratesFlag(&o.Rates))
		fs.DurationVar(&o.Baseline, "baseline", o.Baseline, "window of RSS samples before any account (median: the base)")
		fs.DurationVar(&o.Idle, "idle", o.Idle, "idle window after all are connected and settled: CPU, and RSS samples (median)")
		fs.Func("size", "message size, e.g. 2KB (default 2048)", sizeFlag(&o.Size))
		fs.StringVar(&o.Folder, "folder", o.Folder, "the one folder every account watches")
		fs.StringVar(&o.EEURL, "ee-url", o.EEURL, "EmailEngine's API base URL")
		fs.StringVar(&o.EEToken, "ee-token", "", "EmailEngine access token (empty: its API runs without authentication)")
		fs.IntVar(&o.EEPid, "ee-pid", 0, "EmailEngine's process id: its VmRSS (with any child processes) and CPU are measured")
		fs.IntVar(&o.EERedisPid, "ee-redis-pid", 0, "optional: the pid of EmailEngine's Redis, whose VmRSS is reported beside it")
		fs.BoolVar(&o.EENotifyText, "ee-notify-text", o.EENotifyText, "EmailEngine setting notifyText: events carry the text, as ours do")
		scenarioFn = func(ctx context.Context) (*Result, error) {
			o.commonOptions, o.Duration, o.Drain, o.Settle, o.Trace = co, *duration, or(*drain, 30*time.Second), or(*settle, 10*time.Second), *trace
			if *smoke {
				o.Baseline, o.Settle, o.Idle, o.Rates, o.Duration = 500*time.Millisecond, minSettle, time.Second, []float64{20}, 2*time.Second
			}
			return runWebhooks(ctx, o)
		}
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "elbench: unexpected arguments %v\n", fs.Args())
		return 2
	}
	if *smoke {
		co.N = 20
	}
	if co.N < 1 {
		fmt.Fprintln(stderr, "elbench: -n must be at least 1")
		return 2
	}
	if co.ExistsTimeout == 0 {
		co.ExistsTimeout = time.Minute + time.Duration(co.N)*60*time.Millisecond
	}
	co.Logf = func(format string, args ...any) {
		if !*quiet {
			fmt.Fprintf(stderr, "%s elbench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
	}

	if _, err := raiseNoFile(); err != nil { // inherited by Dovecot and the service
		fmt.Fprintln(stderr, "elbench: WARNING: cannot raise RLIMIT_NOFILE:", err)
	}
	inotifyWarning := checkInotify(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	res, err := scenarioFn(ctx)
	if res == nil {
		fmt.Fprintln(stderr, "elbench:", err)
		return 1
	}
	if inotifyWarning != "" {
		res.Warnings = append([]string{inotifyWarning}, res.Warnings...)
	}
	if err != nil {
		res.Error = err.Error()
		res.OK = false
	}
	res.WriteTable(stdout)
	path, werr := res.WriteJSON(*jsonOut)
	if werr != nil {
		fmt.Fprintln(stderr, "elbench: write result:", werr)
		return 1
	}
	fmt.Fprintf(stdout, "result: %s\n", path)
	if err != nil {
		fmt.Fprintln(stderr, "elbench:", err)
		return 1
	}
	if !res.OK {
		return 1
	}
	return 0
}

// checkInotify warns loudly when fs.inotify.max_user_instances is too low for the
// scale runs, and returns the warning ("" when fine).
func checkInotify(stderr io.Writer) string {
	n := inotifyInstances()
	if n >= minInotifyInstances {
		return ""
	}
	msg := fmt.Sprintf("fs.inotify.max_user_instances is %d (< %d): past ~%d IDLE connections Dovecot falls back to 30 s polling "+
		"and stops hibernating, so latencies and memory are meaningless. Run scripts/install-test-deps.sh as root "+
		"(or: sysctl -w fs.inotify.max_user_instances=%d)", n, minInotifyInstances, n, minInotifyInstances)
	line := strings.Repeat("!", 78)
	fmt.Fprintf(stderr, "%s\nWARNING: %s\n%s\n", line, msg, line)
	return msg
}

// sizeFlag parses sizes like 2048, 2KB (1000) or 30KiB (1024) into *p.
func sizeFlag(p *int) func(string) error {
	return func(v string) error {
		n, err := config.ParseSize(v)
		if err != nil {
			return err
		}
		if n < 256 || n > 64<<20 {
			return errors.New("want between 256 bytes and 64MiB")
		}
		*p = int(n)
		return nil
	}
}

// ratesFlag parses a comma-separated list of positive rates into *p.
func ratesFlag(p *[]float64) func(string) error {
	return func(v string) error {
		var rates []float64
		for f := range strings.SplitSeq(v, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || r <= 0 {
				return fmt.Errorf("%q is not a positive rate", f)
			}
			rates = append(rates, r)
		}
		*p = rates
		return nil
	}
}

// or returns v, or def when v is zero.
func or(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
