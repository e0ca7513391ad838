// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is 100 on every
// Linux architecture Go supports; reading sysconf(_SC_CLK_TCK) would need cgo.
const clockTicks = 100

// minInotifyInstances is what scripts/install-test-deps.sh sets. Below it Dovecot, past
// ~max_user_instances IDLE connections of its uid, silently falls back to 30 s polling and
// stops hibernating (inotify instances are counted per uid, default 128), which would
// make every number here wrong.
const minInotifyInstances = 8192

// rssBytes returns VmRSS of pid from /proc/PID/status.
func rssBytes(pid int) (int64, error) {
	kb, err := procStatusKB(pid, "VmRSS")
	return kb << 10, err
}

// cpuSeconds returns utime+stime of pid (user plus system CPU time, all threads).
func cpuSeconds(pid int) (float64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return float64(f.utime+f.stime) / clockTicks, nil
}

// procStat holds the fields of /proc/PID/stat this file uses, in clock ticks.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

func statFields(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// comm (field 2) may hold spaces and parentheses: count fields after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
	if len(f) < 15 {
		return procStat{}, errors.New("short /proc/PID/stat")
	}
	var st procStat
	var errs [5]error
	st.ppid, errs[0] = strconv.Atoi(f[1])
	st.utime, errs[1] = strconv.ParseInt(f[11], 10, 64)
	st.stime, errs[2] = strconv.ParseInt(f[12], 10, 64)
	st.cutime, errs[3] = strconv.ParseInt(f[13], 10, 64)
	st.cstime, errs[4] = strconv.ParseInt(f[14], 10, 64)
	return st, errors.Join(errs[:]...)
}

// treeCPUSeconds is the CPU time of a process tree whose root reaps all its children
// (the Dovecot master): every live member's own time plus the root's reaped-children
// time, so short-lived imap processes count too.
func treeCPUSeconds(pids []int) float64 {
	var ticks int64
	self := os.Getpid()
	for _, p := range pids {
		st, err := statFields(p)
		if err != nil {
			continue
		}
		ticks += st.utime + st.stime
		if st.ppid == self { // the master, our child
			ticks += st.cutime + st.cstime
		}
	}
	return float64(ticks) / clockTicks
}

// selfCPUSeconds is the CPU time of this benchmark process (collector, appenders).
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// machineCPU returns busy, total and steal jiffies of all CPUs from /proc/stat, so that
// the busy share of the whole machine over an interval can be computed (other
// engineers' tests may be running on it). Busy includes steal (time the hypervisor gave
// to other guests), as before.
func machineCPU() (busy, total, steal int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i, s := range f[1:] {
		n, _ := strconv.ParseInt(s, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
		if i == 7 {
			steal = n
		}
	}
	return busy, total, steal
}

// cpuWindow measures CPU use of the service, of this process and of the machine over an
// interval: start it, do the work, call stop.
type cpuWindow struct {
	pid                   int
	dovecot               func() []int // the Dovecot instance's live PIDs
	t0                    time.Time
	svc0, self0, dc0      float64
	machBusy0, machTotal0 int64
	machSteal0            int64
}

func startCPUWindow(pid int, dovecot func() []int) *cpuWindow {
	w := &cpuWindow{pid: pid, dovecot: dovecot, t0: time.Now(), self0: selfCPUSeconds()}
	w.svc0, _ = cpuSeconds(pid)
	w.dc0 = treeCPUSeconds(dovecot())
	w.machBusy0, w.machTotal0, w.machSteal0 = machineCPU()
	return w
}

// cpuUse is the outcome of a cpuWindow.
type cpuUse struct {
	Wall        time.Duration
	ServiceSec  float64 // CPU seconds the service used
	SelfSec     float64 // CPU seconds this process used
	DovecotSec  float64 // CPU seconds the Dovecot instance used
	MachineBusy float64 // busy share of all CPUs, 0..1
	// OtherSec is the CPU time of everything else on the machine: all CPUs' busy time
	// minus steal, the service, Dovecot and this process (other engineers' runs, the
	// kernel's own threads and softirq work not charged to a process).
	OtherSec float64
	StealSec float64 // time the hypervisor ran other guests while this one wanted to run
}

// ServicePct is the service's CPU use in percent of one core.
func (u cpuUse) ServicePct() float64 { return 100 * u.ServiceSec / u.Wall.Seconds() }

func (w *cpuWindow) stop() cpuUse {
	svc1, _ := cpuSeconds(w.pid)
	b1, t1, st1 := machineCPU()
	u := cpuUse{Wall: time.Since(w.t0), ServiceSec: svc1 - w.svc0, SelfSec: selfCPUSeconds() - w.self0,
		DovecotSec: treeCPUSeconds(w.dovecot()) - w.dc0}
	if dt := t1 - w.machTotal0; dt > 0 {
		u.MachineBusy = float64(b1-w.machBusy0) / float64(dt)
	}
	u.StealSec = float64(st1-w.machSteal0) / clockTicks
	u.OtherSec = max(0, float64(b1-w.machBusy0)/clockTicks-u.StealSec-u.ServiceSec-u.DovecotSec-u.SelfSec)
	return u
}

// rssSampler records the peak RSS of a process, sampled every interval until stopped.
type rssSampler struct {
	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
	peak     int64 // owned by the sampling goroutine until done is closed
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v, err := rssBytes(pid); err == nil && v > s.peak {
				s.peak = v
			}
			select {
			case <-s.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peak RSS in bytes.
func (s *rssSampler) Stop() int64 {
	s.stopOnce.Do(func() { close(s.stopCh) })
	<-s.done
	return s.peak
}

// sumRSS adds up VmRSS of pids (processes that vanished meanwhile count 0). For
// Dovecot's process tree RSS over-counts shared pages; it is a ceiling.
func sumRSS(pids []int) int64 {
	var n int64
	for _, p := range pids {
		if v, err := rssBytes(p); err == nil {
			n += v
		}
	}
	return n
}

// raiseNoFile sets the soft RLIMIT_NOFILE to the hard limit. Setting it explicitly
// (rather than relying on the Go runtime's own raise) makes children — Dovecot and the
// service — inherit it: thousands of IMAP connections need thousands of descriptors.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// inotifyInstances returns fs.inotify.max_user_instances, 0 if unreadable.
func inotifyInstances() int {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// Machine describes where a result was measured.
type Machine struct {
	NumCPU          int     `json:"nproc"`
	MemTotalMiB     int64   `json:"mem_total_mib"`
	Kernel          string  `json:"kernel"`
	GoVersion       string  `json:"go_version"`
	Dovecot         string  `json:"dovecot_version"`
	InotifyInstance int     `json:"inotify_max_user_instances"`
	NoFile          uint64  `json:"rlimit_nofile"`
	LoadBefore      string  `json:"loadavg_before"`
	LoadAfter       string  `json:"loadavg_after,omitempty"`
	Load1Before     float64 `json:"load1_before"`
}

func describeMachine(dovecotBin string) Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), InotifyInstance: inotifyInstances()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemTotalMiB = kb >> 10
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(dovecotBin, "--version").Output(); err == nil {
		m.Dovecot = strings.TrimSpace(string(out))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		m.NoFile = lim.Cur
	}
	m.LoadBefore = loadavg()
	m.Load1Before, _ = strconv.ParseFloat(strings.Fields(m.LoadBefore + " 0")[0], 64)
	return m
}

// loadavg returns the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

// dovecotBinary finds the dovecot executable like testenv does ("dovecot" from PATH,
// else /usr/sbin/dovecot), for the version string only.
func dovecotBinary() string {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p
	}
	return "/usr/sbin/dovecot"
}

// solo is the service process of a scenario against an in-process fake
// server (exchange, graph): started, with its API and its baseline before
// any mailbox.
type solo struct {
	svc  *service
	api  *api
	pid  int
	rss0 int64 // VmRSS before registering
	g0   int   // goroutines before registering
}

// startSolo starts the service with env, waits a second for it to settle and
// records its baseline. close stops it, adding a warning and the log's
// warnings and errors to res.
func startSolo(ctx context.Context, bin, dir string, env []string, res *Result) (*solo, error) {
	svc, err := startService(ctx, bin, dir, env)
	if err != nil {
		return nil, err
	}
	s := &solo{svc: svc, api: newAPI(svc.base, 64), pid: svc.Pid()}
	if err = sleepCtx(ctx, time.Second); err == nil {
		if s.rss0, err = rssBytes(s.pid); err == nil {
			s.g0, err = s.api.goroutines(ctx)
		}
	}
	if err != nil {
		s.close(res)
		return nil, err
	}
	return s, nil
}

func (s *solo) close(res *Result) {
	s.api.close()
	if err := s.svc.stop(); err != nil {
		res.warn("%v", err)
	}
	if n, lines := scanLog(s.svc.logPath, func(l string) bool {
		return strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN")
	}); n > 0 {
		res.Notes["service_log_warnings"] = n
		res.Notes["service_log_sample"] = lines
	}
}
