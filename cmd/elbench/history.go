// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// defaultHistoryFilter matches every seeded message (they are dated in 2025 and carry
// neither \Draft nor \Deleted): Creatio's usual filter with a date far in the past.
const defaultHistoryFilter = "UNDRAFT UNDELETED SENTSINCE 01-Jan-2000"

// historyPoll is how often the load's progress is read from subscriptionsstate.
const historyPoll = 100 * time.Millisecond

// historyOptions configures the history scenario.
type historyOptions struct {
	commonOptions
	Messages    int           // messages seeded into the one mailbox
	Size        int           // 0: ~4 KB messages without attachment; else one attachment fills this size
	Folders     int           // INBOX plus Folders-1 others
	Filter      string        // synchronize Filters
	Settle      time.Duration // wait after the mailbox exists, before synchronize
	LoadTimeout time.Duration // budget from synchronize until everything arrived
	Trace       string        // if set, one CSV line per message
}

// historyFolderNames are the folders besides INBOX, in order of use. None is one the
// service skips by default (Trash, Junk, Drafts, Outbox).
var historyFolderNames = []string{"Archive", "Sent", "Projects", "Clients", "Invoices", "Newsletters", "Support", "Travel"}

// historyFolder returns the name of folder k (0 is INBOX).
func historyFolder(k int) string {
	switch {
	case k == 0:
		return "INBOX"
	case k-1 < len(historyFolderNames):
		return historyFolderNames[k-1]
	default:
		return "Folder" + strconv.Itoa(k)
	}
}

// folderOf spreads messages like a real mailbox: half in INBOX, the rest round-robin
// over the other folders.
func folderOf(seq, folders int) int {
	if folders <= 1 || seq%2 == 0 {
		return 0
	}
	return 1 + (seq/2)%(folders-1)
}

// runHistory measures a history load (Creatio's synchronize call) of one large
// mailbox: Messages messages over Folders folders are written straight into the
// Maildir of u0@example.com (APPEND costs Dovecot ~5 ms per message), the mailbox is
// registered with create like any subscription, and then POST /api/email/synchronize
// loads them all. It reports the time from the call to the last arrival, emails/s,
// every Message-ID delivered exactly once, peak RSS and CPU.
func runHistory(ctx context.Context, o historyOptions) (res *Result, err error) {
	o.N = 1
	p := o.params()
	p["messages"], p["size"], p["folders"], p["filter"], p["settle"] = o.Messages, o.Size, o.Folders, o.Filter, o.Settle.String()
	delete(p, "n")
	res = newResult("history", p)
	defer res.finish()
	s, err := startStack(ctx, o.stackOptions)
	if err != nil {
		return res, err
	}
	defer s.closeInto(res)
	m := &res.Metrics

	// Seed and let Dovecot index the folders (assign UIDs), as a production server
	// would have long done; the SEARCH of the load still parses every Date header.
	o.Logf("seeding %d messages over %d folders", o.Messages, o.Folders)
	seed, err := seedMaildir(ctx, s, o)
	if err != nil {
		return res, err
	}
	m.Add("messages", float64(o.Messages), "", "seeded into u0@example.com")
	m.Add("folders", float64(o.Folders), "", "INBOX + others")
	m.Add("message_bytes_mean", float64(seed.bytes)/float64(o.Messages), "B", "")
	m.Add("mailbox_mib", mib(seed.bytes), "MiB", "all messages")
	m.Add("seed_ms", ms(seed.took), "ms", "Maildir files written directly")
	m.Add("dovecot_index_ms", ms(seed.index), "ms", "STATUS of every folder (Dovecot scans the Maildirs, assigns UIDs)")
	res.Notes["folder_counts"] = seed.counts
	o.Logf("seeded in %v, indexed in %v", seed.took.Round(time.Millisecond), seed.index.Round(time.Millisecond))

	if err := registerAll(ctx, s, o.commonOptions, res); err != nil {
		return res, err
	}
	if !res.OK {
		return res, errors.New("the mailbox did not reach exists")
	}
	if err := sleepCtx(ctx, o.Settle); err != nil {
		return res, err
	}

	pid := s.svc.Pid()
	rss0, err := rssBytes(pid)
	if err != nil {
		return res, err
	}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0), so the
	// high-water mark read at the end belongs to the load alone.
	hwmReset := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	body, err := s.target.synchronizeBody(0, o.Filter)
	if err != nil {
		return res, err
	}
	o.Logf("synchronize %q", o.Filter)
	w := startCPUWindow(pid, s.dc.PIDs)
	peak := sampleRSS(pid, 100*time.Millisecond)
	t0 := time.Now()
	out, err := s.api.post(ctx, "/api/email/synchronize", body)
	callTook := time.Since(t0)
	if err != nil {
		peak.Stop()
		return res, fmt.Errorf("synchronize: %w", err)
	}
	res.Notes["synchronize_answer"] = truncate(string(out), 200)

	prog, werr := waitHistory(ctx, s, o, t0)
	cpu := w.stop()
	peakRSS := peak.Stop()
	hwm, _ := procStatusKB(pid, "VmHWM")
	rss1, _ := rssBytes(pid)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	st := s.arrivals.stats()
	var first time.Time
	lost := 0
	for seq := range o.Messages {
		at, ok := s.arrivals.first(seq)
		if !ok {
			lost++
			continue
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	delivered := o.Messages - lost
	e2e := st.Last.Sub(t0)
	if delivered == 0 {
		e2e = time.Since(t0)
	}
	m.Add("synchronize_call_ms", ms(callTook), "ms", "POST /api/email/synchronize round trip")
	if !first.IsZero() {
		m.Add("first_email_ms", ms(first.Sub(t0)), "ms", "synchronize call until the first email arrived")
	}
	m.Add("history_done_ms", ms(prog.doneAt), "ms", "synchronize call until History.State done was seen (100 ms polls)")
	m.Add("end_to_end_s", e2e.Seconds(), "s", "synchronize call until the last email arrived")
	m.Add("emails_per_s", float64(delivered)/e2e.Seconds(), "/s", "delivered / end_to_end_s")
	m.Add("mib_per_s", float64(delivered)*float64(seed.bytes)/float64(o.Messages)/(1<<20)/e2e.Seconds(), "MiB/s", "message bytes")
	m.Add("expected", float64(o.Messages), "", "")
	m.Add("delivered", float64(delivered), "", "distinct Message-IDs at the Collector")
	m.Add("lost", float64(lost), "", "seeded but never delivered")
	m.Add("duplicates", float64(st.Duplicates), "", "arrivals beyond the first per Message-ID")
	m.Add("foreign_emails", float64(st.Foreign), "", "emails not seeded by this run")
	m.Add("history_found", float64(prog.found), "", "service progress: Found")
	m.Add("history_delivered", float64(prog.delivered), "", "service progress: Delivered")
	m.Add("history_skipped", float64(prog.skipped), "", "service progress: Skipped")
	m.Add("live_delivered", float64(prog.live), "", "the subscription's own Delivered (should stay 0: it starts at UIDNEXT)")
	m.Add("service_rss_before_mib", mib(rss0), "MiB", "VmRSS before synchronize")
	m.Add("service_rss_peak_mib", mib(peakRSS), "MiB", "VmRSS sampled every 100 ms during the load")
	if hwm > 0 {
		help := "VmHWM at the end: peak RSS since the reset before synchronize"
		if !hwmReset {
			help = "VmHWM at the end: peak RSS since the service started (reset failed)"
		}
		m.Add("service_vmhwm_mib", float64(hwm)/1024, "MiB", help)
	}
	m.Add("service_rss_after_mib", mib(rss1), "MiB", "VmRSS at the end")
	m.Add("service_cpu_seconds", cpu.ServiceSec, "s", "synchronize call until done")
	m.Add("service_cpu_ms_per_email", 1000*cpu.ServiceSec/float64(max(delivered, 1)), "ms", "")
	m.Add("service_cpu_pct_of_core", cpu.ServicePct(), "%", "average over the load")
	m.Add("dovecot_cpu_seconds", cpu.DovecotSec, "s", "whole Dovecot instance, same window")
	m.Add("dovecot_cpu_ms_per_email", 1000*cpu.DovecotSec/float64(max(delivered, 1)), "ms", "")
	m.Add("bench_cpu_seconds", cpu.SelfSec, "s", "this process (Collector JSON decoding)")
	m.Add("machine_busy_pct", 100*cpu.MachineBusy, "%", "all CPUs")
	m.Add("other_cpu_seconds", cpu.OtherSec, "s", "CPU of everything else (other engineers' runs, kernel threads, softirq); ~0 on a quiet machine")
	m.Add("steal_cpu_seconds", cpu.StealSec, "s", "hypervisor steal (counted in machine_busy_pct)")
	res.Notes["history_state"] = prog.last
	res.Notes["progress"] = prog.timeline
	res.Notes["collector_requests"] = st.Ops
	if lost > 0 {
		res.Notes["lost_sample"] = lostSample(s.arrivals, o.Messages, o.Folders)
	}
	if o.Trace != "" {
		if err := writeHistoryTrace(o.Trace, s.arrivals, o.Messages, o.Folders, t0); err != nil {
			res.warn("trace: %v", err)
		}
	}
	if lost > 0 {
		res.fail("%d of %d messages were not delivered", lost, o.Messages)
	}
	if st.Duplicates > 0 {
		res.fail("%d duplicate deliveries", st.Duplicates)
	}
	if prog.state != "done" {
		res.fail("history load ended in state %q: %v", prog.state, prog.last)
	}
	if prog.found != o.Messages {
		res.warn("the service found %d messages, %d were seeded", prog.found, o.Messages)
	}
	if werr != nil {
		return res, werr
	}
	return res, nil
}

// seedResult is what seedMaildir did.
type seedResult struct {
	bytes  int64
	took   time.Duration  // writing the files
	index  time.Duration  // STATUS of every folder afterwards
	counts map[string]int // folder -> messages
}

// seedMaildir writes o.Messages messages into u0's Maildir: created through DeliverFile
// (tmp/ then new/), then renamed into cur/ with flags, the internal date set as mtime.
// Afterwards one STATUS per folder makes Dovecot index them and checks the counts.
func seedMaildir(ctx context.Context, s *stack, o historyOptions) (seedResult, error) {
	user := userName(0)
	r := seedResult{counts: map[string]int{}}
	c, err := s.dc.Client(user, benchPassword)
	if err != nil {
		return r, err
	}
	defer func() { _ = c.Logout().Wait(); _ = c.Close() }()
	for k := 1; k < o.Folders; k++ {
		if err := c.Create(historyFolder(k), nil).Wait(); err != nil {
			return r, fmt.Errorf("create folder %s: %w", historyFolder(k), err)
		}
		if err := c.Subscribe(historyFolder(k)).Wait(); err != nil {
			return r, fmt.Errorf("subscribe %s: %w", historyFolder(k), err)
		}
	}
	gen := newHistoryMessages(o.Size, o.Messages)
	t0 := time.Now()
	for seq := range o.Messages {
		if seq%1000 == 0 && ctx.Err() != nil {
			return r, ctx.Err()
		}
		folder := historyFolder(folderOf(seq, o.Folders))
		raw, sent := gen.build(seq, user)
		path, err := s.dc.DeliverFile(user, folder, raw)
		if err != nil {
			return r, err
		}
		cur := filepath.Join(filepath.Dir(filepath.Dir(path)), "cur", filepath.Base(path)+":2,"+gen.flags(seq))
		if err := os.Rename(path, cur); err != nil {
			return r, err
		}
		arrived := sent.Add(time.Duration(5+seq%115) * time.Second)
		if err := os.Chtimes(cur, arrived, arrived); err != nil {
			return r, err
		}
		r.bytes += int64(len(raw))
		r.counts[folder]++
	}
	r.took = time.Since(t0)
	t1 := time.Now()
	for k := range o.Folders {
		name := historyFolder(k)
		st, err := c.Status(name, &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
		if err != nil {
			return r, fmt.Errorf("status %s: %w", name, err)
		}
		if st.NumMessages == nil || int(*st.NumMessages) != r.counts[name] {
			return r, fmt.Errorf("folder %s holds %v messages after seeding, want %d", name, st.NumMessages, r.counts[name])
		}
	}
	r.index = time.Since(t1)
	return r, nil
}

// historyMessages builds the seeded messages: realistic headers (Received chain, DKIM,
// Authentication-Results, threading), a short multipart/alternative text+HTML body,
// ~4 KB in all; with size > 0 the message becomes multipart/mixed with one base64
// attachment filling it up to size.
type historyMessages struct {
	base     time.Time
	step     time.Duration // spreads n messages' Date headers over a year
	filler   []byte        // base64 lines of the attachment, shared
	dkim     string        // a folded DKIM b= value, shared
	baseSize int           // size of a message without attachment (approximately)
}

func newHistoryMessages(size, n int) *historyMessages {
	g := &historyMessages{
		base: time.Date(2025, 1, 1, 7, 0, 0, 0, time.UTC),
		step: 365 * 24 * time.Hour / time.Duration(max(n, 1)),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	sig := make([]byte, 256)
	for i := range sig {
		sig[i] = byte(rng.UintN(256))
	}
	enc := base64.StdEncoding.EncodeToString(sig)
	var d strings.Builder
	for len(enc) > 70 {
		d.WriteString(enc[:70] + "\r\n\t ")
		enc = enc[70:]
	}
	d.WriteString(enc)
	g.dkim = d.String()
	raw, _ := g.build(0, userName(0))
	g.baseSize = len(raw)
	if size > g.baseSize {
		// What the attachment part adds besides its base64 lines (headers, boundaries).
		const partOverhead = 330
		g.filler = base64Filler(rng, max(size-g.baseSize-partOverhead, 64))
	}
	return g
}

var (
	historySenders = []string{
		"Anna Schmidt <anna.schmidt@partner-gmbh.example>", "\"Oliver, James\" <j.oliver@northwind.example>",
		"=?UTF-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan.petrov@contoso.example>", "billing@supplier.example",
		"Marie Dubois <marie.dubois@client.example>", "noreply@notifications.example",
		"=?UTF-8?Q?Jos=C3=A9_Garc=C3=ADa?= <jose.garcia@fabrikam.example>", "Support Team <support@vendor.example>",
	}
	historySubjects = []string{
		"Quarterly report", "Re: Contract renewal", "Invoice", "Meeting notes", "Fwd: Shipment delayed",
		"=?UTF-8?B?0JfQsNC60LDQtyDQvdCwINC/0L7RgdGC0LDQstC60YM=?=", "Your ticket has been updated", "Re: Re: Pricing question",
	}
	historyZones = []*time.Location{
		time.FixedZone("", 0), time.FixedZone("", 3600), time.FixedZone("", 3*3600), time.FixedZone("", -5*3600),
	}
)

// date returns the Date header time of message seq: spread evenly over 2025, with a
// deterministic jitter of up to ±1 h, in one of a few time zones.
func (g *historyMessages) date(seq int) time.Time {
	jitter := time.Duration((seq*7919)%7200-3600) * time.Second
	return g.base.Add(time.Duration(seq)*g.step + jitter).In(historyZones[seq%len(historyZones)])
}

// flags returns the Maildir info flags of message seq: mostly seen, some answered or
// flagged; never D (draft) or T (deleted), so the default filter matches all.
func (g *historyMessages) flags(seq int) string {
	switch {
	case seq%33 == 0:
		return "FS"
	case seq%7 == 0:
		return "RS"
	case seq%6 == 1:
		return "" // unread
	default:
		return "S"
	}
}

// build returns message seq for user and its Date.
func (g *historyMessages) build(seq int, user string) ([]byte, time.Time) {
	sent := g.date(seq)
	from := historySenders[seq%len(historySenders)]
	subject := historySubjects[seq%len(historySubjects)] + " #" + strconv.Itoa(seq)
	rcv := sent.Add(3 * time.Second).Format(time.RFC1123Z)
	var b bytes.Buffer
	b.Grow(4096 + len(g.filler))
	fmt.Fprintf(&b, "Return-Path: <bounce-%d@mx.partner.example>\r\nDelivered-To: %s\r\n", seq, user)
	fmt.Fprintf(&b, "Received: from mx1.example.com (mx1.example.com [192.0.2.10])\r\n\tby imap.example.com (Postfix) with ESMTPS id 4Q%07dZ\r\n\tfor <%s>; %s\r\n", seq, user, rcv)
	fmt.Fprintf(&b, "Received: from mail-out.partner.example (mail-out.partner.example [198.51.100.%d])\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\t(No client certificate requested)\r\n\tby mx1.example.com (Postfix) with ESMTPS id 4Q%07dY\r\n\tfor <%s>; %s\r\n", seq%250+1, seq, user, rcv)
	fmt.Fprintf(&b, "Received: from [10.20.%d.%d] (unknown [203.0.113.7])\r\n\tby mail-out.partner.example (Postfix) with ESMTPSA id A%06d\r\n\tfor <%s>; %s\r\n", seq%200, seq%250, seq, user, sent.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Authentication-Results: mx1.example.com;\r\n\tdkim=pass (2048-bit key; unprotected) header.d=partner.example header.i=@partner.example header.b=\"kX3%05d\";\r\n\tspf=pass (mx1.example.com: domain of bounce@partner.example designates 198.51.100.7 as permitted sender);\r\n\tdmarc=pass (p=quarantine dis=none) header.from=partner.example\r\n", seq%100000)
	fmt.Fprintf(&b, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=partner.example;\r\n\ts=sel2025; t=%d; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\th=From:To:Cc:Subject:Date:Message-ID:In-Reply-To:References:MIME-Version:Content-Type;\r\n\tb=%s\r\n", sent.Unix(), g.dkim)
	fmt.Fprintf(&b, "ARC-Seal: i=1; a=rsa-sha256; t=%d; cv=none; d=partner.example; s=arc-2025;\r\n\tb=%s\r\n", sent.Unix(), g.dkim)
	fmt.Fprintf(&b, "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=partner.example; s=arc-2025;\r\n\th=to:subject:message-id:date:from:mime-version:dkim-signature;\r\n\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb=%s\r\n", g.dkim)
	fmt.Fprintf(&b, "X-MS-Exchange-Organization-SCL: 1\r\nX-MS-Exchange-Organization-AuthSource: mx1.example.com\r\nX-MS-Has-Attach: %s\r\nX-Spam-Status: No, score=-2.%d required=5.0 tests=BAYES_00,DKIM_SIGNED,DKIM_VALID,SPF_PASS\r\n", map[bool]string{true: "yes", false: ""}[g.filler != nil], seq%10)
	fmt.Fprintf(&b, "From: %s\r\nTo: Mailbox Owner <%s>\r\n", from, user)
	if seq%3 == 0 {
		b.WriteString("Cc: Sales <sales@example.com>, \"Kowalski, Jan\" <jan.kowalski@example.com>\r\n")
	}
	fmt.Fprintf(&b, "Subject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n", subject, sent.Format(time.RFC1123Z), messageID(seq))
	if seq%4 == 1 && seq > 0 {
		prev := messageID(seq - 1)
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: <thread-%d@partner.example>\r\n %s\r\n", prev, seq/40, prev)
	}
	b.WriteString("MIME-Version: 1.0\r\nX-Mailer: Microsoft Outlook 16.0\r\nThread-Index: AdqFz3k2bQ1x9cYvT0GmZsLr8w==\r\nContent-Language: en-US\r\n")
	if seq%11 == 0 {
		b.WriteString("Importance: high\r\nX-Priority: 1\r\n")
	}
	alt := fmt.Sprintf("alt-%d", seq)
	if g.filler != nil {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"mix-%d\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--mix-%d\r\n", seq, seq)
	}
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", alt)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", alt)
	fmt.Fprintf(&b, "Hello,\r\n\r\nplease find the update on item %d below. The figures for the last period\r\nare in line with the plan; the open points are listed in the attached\r\nsummary. Let me know if you have questions before Friday.\r\n\r\nBest regards,\r\n%s\r\n", seq, "Anna")
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", alt)
	fmt.Fprintf(&b, "<html><head><meta http-equiv=3D\"Content-Type\" content=3D\"text/html; charset=3Dutf-8\"></head>\r\n<body lang=3D\"EN-US\" style=3D\"font-family:Calibri,sans-serif;font-size:11pt\">\r\n<p>Hello,</p>\r\n<p>please find the update on item <b>%d</b> below. The figures for the last period=\r\n are in line with the plan; the open points are listed in the attached summary.=\r\n Let me know if you have questions before Friday.</p>\r\n<p>Best regards,<br>Anna</p>\r\n</body></html>\r\n", seq)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", alt)
	if g.filler != nil {
		fmt.Fprintf(&b, "\r\n--mix-%d\r\nContent-Type: application/pdf; name=\"report-%d.pdf\"\r\nContent-Description: report-%d.pdf\r\n", seq, seq, seq)
		fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"report-%d.pdf\"; size=%d\r\nContent-Transfer-Encoding: base64\r\n\r\n", seq, len(g.filler)*3/4)
		b.Write(g.filler)
		fmt.Fprintf(&b, "\r\n--mix-%d--\r\n", seq)
	}
	return b.Bytes(), sent
}

// historyProgress is what waitHistory saw.
type historyProgress struct {
	state                     string // History.State at the end ("" if never seen)
	found, delivered, skipped int
	live                      int           // the subscription's own Delivered counter
	doneAt                    time.Duration // since the synchronize call, when done/failed was first seen
	last                      map[string]any
	timeline                  []string // "t=1.0s running found=… delivered=… arrived=…", about once a second
}

// waitHistory polls subscriptionsstate every historyPoll until the load is done (or
// failed) and every seeded message arrived, or the load timeout passes. After done it
// waits one more second so that late duplicates (e.g. through the live subscription)
// are counted.
func waitHistory(ctx context.Context, s *stack, o historyOptions, t0 time.Time) (historyProgress, error) {
	var p historyProgress
	ctx, cancel := context.WithTimeout(ctx, o.LoadTimeout)
	defer cancel()
	tick := time.NewTicker(historyPoll)
	defer tick.Stop()
	lastLine := time.Duration(-time.Second)
	var err error
	for {
		if st, e := s.api.subscriptionState(ctx, mailboxID(0)); e == nil {
			p.readState(st)
		}
		since := time.Since(t0)
		arrived := s.arrivals.stats().Distinct
		line := func() {
			p.timeline = append(p.timeline, fmt.Sprintf("t=%.1fs %s found=%d delivered=%d arrived=%d",
				since.Seconds(), p.state, p.found, p.delivered, arrived))
		}
		if since-lastLine >= time.Second {
			lastLine = since
			line()
		}
		if (p.state == "done" || p.state == "failed") && p.doneAt == 0 {
			p.doneAt = since
			line()
			o.Logf("history load %s after %v: found %d, delivered %d, %d arrived", p.state, since.Round(time.Millisecond), p.found, p.delivered, arrived)
		}
		if p.state == "failed" || (p.state == "done" && arrived >= o.Messages) {
			break
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("history load not finished %v after synchronize (state %q, %d of %d arrived)", o.LoadTimeout, p.state, arrived, o.Messages)
		case <-tick.C:
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		_ = sleepCtx(ctx, time.Second)
		if st, e := s.api.subscriptionState(context.WithoutCancel(ctx), mailboxID(0)); e == nil {
			p.readState(st)
		}
	}
	return p, err
}

// readState takes the History object and the subscription's Delivered counter from
// one subscriptionsstate entry.
func (p *historyProgress) readState(st map[string]any) {
	if d, ok := st["Delivered"].(float64); ok {
		p.live = int(d)
	}
	h, ok := st["History"].(map[string]any)
	if !ok {
		return
	}
	p.last = h
	p.state, _ = h["State"].(string)
	num := func(k string) int { v, _ := h[k].(float64); return int(v) }
	p.found, p.delivered, p.skipped = num("Found"), num("Delivered"), num("Skipped")
}

// subscriptionState returns the subscriptionsstate entry of one mailbox id.
func (a *api) subscriptionState(ctx context.Context, id string) (map[string]any, error) {
	body, _ := json.Marshal([]string{id})
	out, err := a.post(ctx, "/api/listeners/subscriptionsstate", string(body))
	if err != nil {
		return nil, err
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("subscriptionsstate: %w: %s", err, truncate(string(out), 200))
	}
	st, ok := m[id]
	if !ok {
		return nil, fmt.Errorf("subscriptionsstate: no entry for %s", id)
	}
	return st, nil
}

// synchronizeBody renders POST /api/email/synchronize for mailbox i in standard JSON
// (Creatio sends this call with quoted names): the same credentials as createBody,
// plus Filters.
func (t target) synchronizeBody(i int, filters string) (string, error) {
	host, port, _ := strings.Cut(t.addr, ":")
	portNum, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("target address %q: %w", t.addr, err)
	}
	creds := map[string]any{
		"FolderIds": []string{}, "PersonalMetrics": false, "UseFullEmail": true, "BpmUserTimeZone": "Russian Standard Time",
		"FeatureValues": map[string]any{"MarkEmailsAsSynchronized": true, "UseBinaryData": false},
		"BpmUser":       "Supervisor", "BpmEndpoint": t.endpoint, "BpmUserWorkspace": "Default",
		"SenderEmailAddress": userName(i), "ServiceUrl": host, "Port": portNum, "UseOAuth": false,
		"IsAutodiscover": false, "AutodiscoverRedirectUrl": "", "Context": "{UserRequested:true,HasError:false}",
		"ServerTypeId": imapServerType, "UseSsl": t.useSSL, "SubscriptionTtl": 0, "FolderClassName": nil,
		"SecureOption": t.secure, "Id": mailboxID(i), "UserName": userName(i), "Password": t.password, "AccessToken": "",
	}
	b, err := json.Marshal(map[string]any{"Credentials": creds, "Filters": filters})
	return string(b), err
}

// procStatusKB returns a "<key>: N kB" field of /proc/PID/status in KiB.
func procStatusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// lostSample lists up to 10 undelivered messages with their folders.
func lostSample(a *arrivals, n, folders int) []string {
	var out []string
	for seq := range n {
		if _, ok := a.first(seq); !ok {
			out = append(out, fmt.Sprintf("#%d in %s", seq, historyFolder(folderOf(seq, folders))))
			if len(out) == 10 {
				break
			}
		}
	}
	return out
}

// writeHistoryTrace writes one CSV line per seeded message: sequence number, folder,
// first arrival in ms after the synchronize call (empty if lost), number of arrivals.
func writeHistoryTrace(path string, a *arrivals, n, folders int, t0 time.Time) error {
	var b strings.Builder
	b.WriteString("seq,folder,arrived_ms,arrivals\n")
	for seq := range n {
		ts := a.all(seq)
		slices.SortFunc(ts, func(x, y time.Time) int { return x.Compare(y) })
		fmt.Fprintf(&b, "%d,%s,", seq, historyFolder(folderOf(seq, folders)))
		if len(ts) > 0 {
			fmt.Fprintf(&b, "%.3f,%d\n", ms(ts[0].Sub(t0)), len(ts))
		} else {
			b.WriteString(",0\n")
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
