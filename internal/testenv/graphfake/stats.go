// SPDX-License-Identifier: Apache-2.0

package graphfake

import "maps"

// Stats is a snapshot of the server's counters, for tests and benchmarks.
type Stats struct {
	// Requests counts API requests: each request of a $batch on its own, the
	// $batch envelope not at all; failed, throttled and refused ones included.
	Requests int64
	// HTTPRequests counts HTTP requests to the API root; a $batch is one.
	HTTPRequests int64
	// Batches counts $batch requests.
	Batches int64
	// Throttled counts 429 answers (programmed, per-mailbox rate and concurrency).
	Throttled int64
	// TokenRequests counts requests to the token endpoint.
	TokenRequests int64
	// DeltaRequests counts delta query requests; MIMERequests $value downloads.
	DeltaRequests int64
	MIMERequests  int64
	// Notifications counts change notifications POSTed (each delivery attempt);
	// LifecycleNotifications lifecycle events POSTed; NotificationPosts the POSTs
	// carrying either; NotificationFailures the POSTs not answered 2xx in time;
	// NotificationsDropped the notifications given up after NotifyRetryFor or lost
	// while a subscription waited for reauthorization.
	Notifications          int64
	LifecycleNotifications int64
	NotificationPosts      int64
	NotificationFailures   int64
	NotificationsDropped   int64
	// Validations counts validation requests sent to notification URLs.
	Validations int64
	// Subscriptions is the number of live subscriptions.
	Subscriptions int
	// ByUser counts API requests per mailbox (by UPN as added).
	ByUser map[string]int64
}

// counters are the running totals behind Stats. Guarded by Server.mu.
type counters struct {
	requests, httpRequests, batches, throttled, tokenRequests int64
	deltaRequests, mimeRequests                               int64
	notifications, lifecycle, posts, postFailures, dropped    int64
	validations                                               int64
	byUser                                                    map[string]int64
}

func newCounters() counters { return counters{byUser: map[string]int64{}} }

// Stats returns a snapshot.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.stats
	return Stats{
		Requests:               c.requests,
		HTTPRequests:           c.httpRequests,
		Batches:                c.batches,
		Throttled:              c.throttled,
		TokenRequests:          c.tokenRequests,
		DeltaRequests:          c.deltaRequests,
		MIMERequests:           c.mimeRequests,
		Notifications:          c.notifications,
		LifecycleNotifications: c.lifecycle,
		NotificationPosts:      c.posts,
		NotificationFailures:   c.postFailures,
		NotificationsDropped:   c.dropped,
		Validations:            c.validations,
		Subscriptions:          s.liveSubscriptions(),
		ByUser:                 maps.Clone(c.byUser),
	}
}
