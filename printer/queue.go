package printer

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// QueueOptions configure a Queue. Zero values take the defaults in brackets.
type QueueOptions struct {
	Log        *slog.Logger  // nil: discard
	MaxJobs    int           // jobs kept while the printer is away [200]
	JobTimeout time.Duration // one print attempt [30 s]
	MinBackoff time.Duration // first retry delay [500 ms]
	MaxBackoff time.Duration // longest retry delay [30 s]
	// Done, if set, is called from the queue's goroutine when a job has printed (err
	// nil) or was dropped as unprintable (err non-nil). It must not block.
	Done func(name string, err error)
}

// JobInfo describes a job waiting in the queue.
type JobInfo struct {
	Name      string    `json:"name"`
	Bytes     int       `json:"bytes"`
	Queued    time.Time `json:"queued"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
}

type job struct {
	JobInfo
	data     []byte
	printing bool // guarded by Queue.mu: Run is sending it now
}

// Queue prints jobs in order from a single goroutine ([Queue.Run]). A job the printer
// cannot take (paper out, cover open, offline, unreachable, too slow) stays at the head
// of the queue and is retried with exponential backoff and jitter until it prints, so
// receipts come out in order once the printer recovers. Submit never blocks: a stuck
// printer never holds up a sale.
type Queue struct {
	p    Printer
	opt  QueueOptions
	log  *slog.Logger
	wake chan struct{} // capacity 1: "look at the queue again"

	mu     sync.Mutex
	jobs   []*job // guarded by mu
	closed bool   // guarded by mu
}

// NewQueue returns a queue in front of p; start it with Run.
func NewQueue(p Printer, opt QueueOptions) *Queue {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.MaxJobs <= 0 {
		opt.MaxJobs = 200
	}
	if opt.JobTimeout <= 0 {
		opt.JobTimeout = 30 * time.Second
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = 500 * time.Millisecond
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(30*time.Second, opt.MinBackoff)
	}
	return &Queue{p: p, opt: opt, log: opt.Log.With("component", "printer-queue"), wake: make(chan struct{}, 1)}
}

// Submit queues a job and returns at once. A job with the name of one still waiting
// (not being printed at this moment) replaces it: a reprint request for a receipt not
// yet printed prints it once. It
// fails with ErrQueueFull when MaxJobs jobs are waiting, ErrName for a bad name, and
// ErrClosed after Run has returned.
func (q *Queue) Submit(name string, data []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	d := append([]byte(nil), data...)
	for _, j := range q.jobs {
		// A job being printed is not replaced: the new one prints after it.
		if j.Name == name && !j.printing {
			j.data, j.Bytes = d, len(d)
			q.signal()
			return nil
		}
	}
	if len(q.jobs) >= q.opt.MaxJobs {
		return ErrQueueFull
	}
	q.jobs = append(q.jobs, &job{JobInfo: JobInfo{Name: name, Bytes: len(d), Queued: time.Now()}, data: d})
	q.signal()
	return nil
}

// Retry makes the queue try its head job now instead of waiting out the backoff, e.g.
// after a technician refilled the paper.
func (q *Queue) Retry() {
	q.mu.Lock()
	q.signal()
	q.mu.Unlock()
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Len returns the number of jobs waiting, the one printing included.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs)
}

// Pending describes the jobs waiting, oldest first.
func (q *Queue) Pending() []JobInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]JobInfo, len(q.jobs))
	for i, j := range q.jobs {
		out[i] = j.JobInfo
	}
	return out
}

// Run prints queued jobs until ctx ends; then it returns nil. Jobs still waiting are
// lost with the process: the sales they belong to are in the store and can be
// reprinted.
func (q *Queue) Run(ctx context.Context) error {
	defer func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
	}()
	failures := 0
	for {
		q.mu.Lock()
		var head *job
		if len(q.jobs) > 0 {
			head = q.jobs[0]
		}
		q.mu.Unlock()
		if head == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-q.wake:
				continue
			}
		}
		q.mu.Lock()
		name, data := head.Name, head.data
		head.printing = true
		q.mu.Unlock()
		jctx, cancel := context.WithTimeout(ctx, q.opt.JobTimeout)
		err := q.p.Print(jctx, name, data)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		// Finishing a job and leaving the printing state happen under one lock, so a
		// Submit of the same name either sees it printing (and queues a new job) or
		// does not see it at all.
		q.mu.Lock()
		head.printing = false
		head.Attempts++
		attempts := head.Attempts
		if err != nil {
			head.LastError = err.Error()
		}
		finished := err == nil || permanent(err)
		if finished {
			q.removeLocked(head)
		}
		q.mu.Unlock()
		switch {
		case err == nil:
			if failures > 0 {
				q.log.Info("printer recovered", "job", name, "attempts", attempts)
			}
			failures = 0
			q.done(name, nil)
			continue
		case finished:
			q.log.Error("job dropped", "job", name, "err", err)
			q.done(name, err)
			continue
		}
		failures++
		d := backoff(q.opt.MinBackoff, q.opt.MaxBackoff, failures)
		if failures == 1 || failures%10 == 0 {
			q.log.Warn("printer not taking jobs; will retry", "job", name, "waiting", q.Len(), "retry_in", d.Round(time.Millisecond), "err", err)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-q.wake:
			t.Stop()
		}
	}
}

// removeLocked takes j out of the queue; q.mu must be held.
func (q *Queue) removeLocked(j *job) {
	for i, x := range q.jobs {
		if x == j {
			q.jobs = append(q.jobs[:i], q.jobs[i+1:]...)
			return
		}
	}
}

func (q *Queue) done(name string, err error) {
	if q.opt.Done != nil {
		q.opt.Done(name, err)
	}
}

// permanent reports errors no retry can fix.
func permanent(err error) bool {
	return errors.Is(err, ErrName) || errors.Is(err, ErrSpec) || errors.Is(err, ErrClosed)
}

// backoff is min·2^(n-1), capped at max, with ±25 % jitter.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	j := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return max(d+j, time.Millisecond)
}
