package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	wsync "github.com/walletless/walletless/sync"
)

// Scenarios lists the kit's scenarios in the order Run runs them.
func Scenarios() []Scenario {
	return []Scenario{
		{"sale", "a payment request is answered approved, once, with kind payment", scSale},
		{"replay", "a resent request (same key, same bytes) gets the stored answer: same status and decided_at", scReplay},
		{"bundle", "each item of a bundle is answered as if it came alone", scBundle},
		{"bundle-bad-item", "a malformed item inside a bundle is ignored alone; its neighbours are answered", scBundleBadItem},
		{"in-doubt-query", "a query changes nothing: unknown before the request, the stored status after", scInDoubtQuery},
		{"reversal-approved", "reversing an approved sale answers reversed; a query then says reversed", scReversalApproved},
		{"reversal-before-request", "a reversal of an unseen key blocks it: the late payment request is answered reversed", scReversalBeforeRequest},
		{"reversal-declined", "reversing a declined sale answers reversed; the record stays declined", scReversalDeclined},
		{"reversal-refunded", "a partly refunded sale cannot be reversed: declined, the sale stays approved", scReversalRefunded},
		{"refund", "a refund within the sale is approved; its resend gets the stored answer", scRefund},
		{"refund-above-sale", "a refund above the sale's refundable rest is declined, and that answer is stored", scRefundAbove},
		{"cross-device-key", "a key used by another device is declined and does not touch the first device's sale", scCrossDevice},
		{"stale-request", "a payment request older than the staleness limit is declined; one stored offline is not", scStale},
		{"malformed", "unknown fields, other versions, trailing data, a foreign device or a bad key are not answered and store nothing", scMalformed},
		{"oversize", "a payload over 64 KiB is not answered and stores nothing", scOversize},
		{"batch-match", "a batch close whose totals match the cloud's is recorded; its resend too", scBatchMatch},
		{"batch-mismatch", "a batch close whose totals differ is declined with the difference; its resend keeps that answer", scBatchMismatch},
		{"cloud-restart", "requests published while the cloud is down are decided once after it returns; answered ones are not redelivered", scRestart},
	}
}

const (
	amount   = 1200
	currency = "KRW"
)

func (s *session) payment(d *device, key string) *wsync.PaymentRequest {
	return &wsync.PaymentRequest{V: wsync.Version, Key: key, Device: d.id, AmountMinor: amount, Currency: currency,
		Kind: "wallet", Scheme: "alipay", Code: "281234567890123456", MaskedCode: "…3456#c0nf0rm1",
		CreatedAt: time.Now().UTC(), Batch: s.batch}
}

func query(d *device, key string) *wsync.QueryRequest {
	return &wsync.QueryRequest{V: wsync.Version, Key: key, Device: d.id, AskedAt: time.Now().UTC()}
}

func reversal(d *device, key string) *wsync.ReversalRequest {
	return &wsync.ReversalRequest{V: wsync.Version, Key: key, Device: d.id, AmountMinor: amount, Currency: currency,
		Scheme: "alipay", Reason: "conformance kit", CreatedAt: time.Now().UTC()}
}

func (s *session) refund(d *device, key, orig string, minor int64) *wsync.RefundRequest {
	return &wsync.RefundRequest{V: wsync.Version, Key: key, Device: d.id, OriginalKey: orig, AmountMinor: minor,
		Currency: currency, Reason: "conformance kit", CreatedAt: time.Now().UTC(), Batch: s.batch}
}

// want checks an answer's status (and, when given, that its reason mentions sub).
func want(what string, r wsync.PaymentResult, status string) error {
	if r.Status != status {
		return fmt.Errorf("%s: answered %q (reason %q), want %q", what, r.Status, r.Reason, status)
	}
	return nil
}

// approvedSale makes an approved sale on d and returns its key and answer.
func (s *session) approvedSale(ctx context.Context, d *device) (string, wsync.PaymentResult, error) {
	k := s.key("sale")
	r, err := d.ask(ctx, wsync.KindPayment, k, s.payment(d, k))
	if err == nil {
		err = want("payment "+k, r, wsync.ResultApproved)
	}
	return k, r, err
}

// silent checks that nothing answered key (of kind) on d: it sends a valid query for
// a fresh key, waits for its answer and then Quiet longer.
func (s *session) silent(ctx context.Context, d *device, kind, key string) error {
	marker := s.key("marker")
	r, err := d.ask(ctx, wsync.KindQuery, marker, query(d, marker))
	if err != nil {
		return fmt.Errorf("the valid marker query after it: %w", err)
	}
	if err := want("marker query", r, wsync.ResultUnknown); err != nil {
		return err
	}
	time.Sleep(s.cfg.Quiet)
	if n := d.count(kind, key); n > 0 {
		return fmt.Errorf("the cloud answered the message it must ignore (%s %s)", kind, key)
	}
	return nil
}

func scSale(ctx context.Context, s *session) error {
	k, r, err := s.approvedSale(ctx, s.a)
	if err != nil {
		return err
	}
	if r.Kind != wsync.KindPayment || r.DecidedAt.IsZero() {
		return fmt.Errorf("answer for %s has kind %q and decided_at %v, want kind payment and a time", k, r.Kind, r.DecidedAt)
	}
	return s.silentDuplicate(ctx, s.a, wsync.KindPayment, k)
}

// silentDuplicate checks that key got exactly one answer.
func (s *session) silentDuplicate(ctx context.Context, d *device, kind, key string) error {
	if err := s.silent(ctx, d, "none", "none"); err != nil {
		return err
	}
	if n := d.count(kind, key); n != 1 {
		return fmt.Errorf("%d answers for one %s %s, want 1", n, kind, key)
	}
	return nil
}

func scReplay(ctx context.Context, s *session) error {
	k := s.key("sale")
	p := s.payment(s.a, k)
	first, err := s.a.ask(ctx, wsync.KindPayment, k, p)
	if err != nil {
		return err
	}
	if err := want("payment", first, wsync.ResultApproved); err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		again, err := s.a.ask(ctx, wsync.KindPayment, k, p)
		if err != nil {
			return fmt.Errorf("resend %d: %w", i+1, err)
		}
		if again.Status != first.Status || !again.DecidedAt.Equal(first.DecidedAt) {
			return fmt.Errorf("resend %d answered %s at %s; the first answer was %s at %s: the cloud decided again",
				i+1, again.Status, again.DecidedAt.Format(time.RFC3339Nano), first.Status, first.DecidedAt.Format(time.RFC3339Nano))
		}
	}
	return nil
}

func bundleOf(d *device, items ...any) ([]byte, error) {
	var out []wsync.BundleItem
	for _, it := range items {
		var kind string
		switch it.(type) {
		case *wsync.PaymentRequest:
			kind = wsync.KindPayment
		case *wsync.QueryRequest:
			kind = wsync.KindQuery
		case *wsync.ReversalRequest:
			kind = wsync.KindReversal
		case *wsync.RefundRequest:
			kind = wsync.KindRefund
		case *wsync.AttemptRecord:
			kind = wsync.KindAttempt
		case json.RawMessage:
			kind = wsync.KindQuery
			out = append(out, wsync.BundleItem{Kind: kind, Payload: it.(json.RawMessage)})
			continue
		}
		raw, err := json.Marshal(it)
		if err != nil {
			return nil, err
		}
		out = append(out, wsync.BundleItem{Kind: kind, Payload: raw})
	}
	return wsync.EncodeBundle(d.id, out)
}

func scBundle(ctx context.Context, s *session) error {
	kp, kq, ka := s.key("sale"), s.key("unseen"), s.key("attempt")
	att := &wsync.AttemptRecord{V: wsync.Version, Key: ka, Device: s.a.id, AmountMinor: amount, Currency: currency,
		Outcome: wsync.AttemptCancelled, CreatedAt: time.Now().UTC()}
	raw, err := bundleOf(s.a, s.payment(s.a, kp), query(s.a, kq), att)
	if err != nil {
		return err
	}
	if err := s.a.publish(wsync.BundleTopic(s.a.id), raw); err != nil {
		return err
	}
	for _, c := range []struct{ kind, key, status string }{
		{wsync.KindPayment, kp, wsync.ResultApproved}, {wsync.KindQuery, kq, wsync.ResultUnknown}, {wsync.KindAttempt, ka, wsync.ResultRecorded},
	} {
		r, err := s.a.await(ctx, c.kind, c.key, 0)
		if err != nil {
			return fmt.Errorf("bundle item %s: %w", c.kind, err)
		}
		if err := want("bundle item "+c.kind, r, c.status); err != nil {
			return err
		}
	}
	return nil
}

func scBundleBadItem(ctx context.Context, s *session) error {
	k1, kbad, k2 := s.key("sale"), s.key("bad"), s.key("sale")
	bad := json.RawMessage(fmt.Sprintf(`{"v":1,"key":%q,"device":%q,"asked_at":"2026-11-22T16:41:10Z","surprise":true}`, kbad, s.a.id))
	raw, err := bundleOf(s.a, s.payment(s.a, k1), bad, s.payment(s.a, k2))
	if err != nil {
		return err
	}
	if err := s.a.publish(wsync.BundleTopic(s.a.id), raw); err != nil {
		return err
	}
	for _, k := range []string{k1, k2} {
		r, err := s.a.await(ctx, wsync.KindPayment, k, 0)
		if err != nil {
			return fmt.Errorf("good neighbour of the bad item: %w", err)
		}
		if err := want("good neighbour", r, wsync.ResultApproved); err != nil {
			return err
		}
	}
	return s.silent(ctx, s.a, wsync.KindQuery, kbad)
}

func scInDoubtQuery(ctx context.Context, s *session) error {
	k := s.key("sale")
	r, err := s.a.ask(ctx, wsync.KindQuery, k, query(s.a, k))
	if err != nil {
		return err
	}
	if err := want("query before the request", r, wsync.ResultUnknown); err != nil {
		return err
	}
	paid, err := s.a.ask(ctx, wsync.KindPayment, k, s.payment(s.a, k))
	if err != nil {
		return err
	}
	if err := want("payment after an unknown query (a query must not block the key)", paid, wsync.ResultApproved); err != nil {
		return err
	}
	r, err = s.a.ask(ctx, wsync.KindQuery, k, query(s.a, k))
	if err != nil {
		return err
	}
	if err := want("query after the request", r, wsync.ResultApproved); err != nil {
		return err
	}
	if !r.DecidedAt.Equal(paid.DecidedAt) {
		return fmt.Errorf("query answered decided_at %s, the payment's was %s", r.DecidedAt.Format(time.RFC3339Nano), paid.DecidedAt.Format(time.RFC3339Nano))
	}
	return nil
}

func scReversalApproved(ctx context.Context, s *session) error {
	k, _, err := s.approvedSale(ctx, s.a)
	if err != nil {
		return err
	}
	rev, err := s.a.ask(ctx, wsync.KindReversal, k, reversal(s.a, k))
	if err != nil {
		return err
	}
	if err := want("reversal", rev, wsync.ResultReversed); err != nil {
		return err
	}
	again, err := s.a.ask(ctx, wsync.KindReversal, k, reversal(s.a, k))
	if err != nil {
		return err
	}
	if err := want("reversal resent", again, wsync.ResultReversed); err != nil {
		return err
	}
	q, err := s.a.ask(ctx, wsync.KindQuery, k, query(s.a, k))
	if err != nil {
		return err
	}
	return want("query after the reversal", q, wsync.ResultReversed)
}

func scReversalBeforeRequest(ctx context.Context, s *session) error {
	k := s.key("sale")
	rev, err := s.a.ask(ctx, wsync.KindReversal, k, reversal(s.a, k))
	if err != nil {
		return err
	}
	if err := want("reversal of an unseen key", rev, wsync.ResultReversed); err != nil {
		return err
	}
	late, err := s.a.ask(ctx, wsync.KindPayment, k, s.payment(s.a, k))
	if err != nil {
		return err
	}
	return want("the late payment request of a reversed key (it must never be charged)", late, wsync.ResultReversed)
}

// declinedSale makes a sale the cloud must decline: created twice the staleness limit
// ago, not offline.
func (s *session) declinedSale(ctx context.Context, d *device) (string, wsync.PaymentResult, error) {
	k := s.key("stale")
	p := s.payment(d, k)
	p.CreatedAt = time.Now().Add(-2 * s.cfg.MaxAge).UTC()
	r, err := d.ask(ctx, wsync.KindPayment, k, p)
	if err == nil {
		err = want(fmt.Sprintf("payment created %s ago", 2*s.cfg.MaxAge), r, wsync.ResultDeclined)
	}
	return k, r, err
}

func scReversalDeclined(ctx context.Context, s *session) error {
	k, _, err := s.declinedSale(ctx, s.a)
	if err != nil {
		return err
	}
	rev, err := s.a.ask(ctx, wsync.KindReversal, k, reversal(s.a, k))
	if err != nil {
		return err
	}
	if err := want("reversal of a declined sale", rev, wsync.ResultReversed); err != nil {
		return err
	}
	q, err := s.a.ask(ctx, wsync.KindQuery, k, query(s.a, k))
	if err != nil {
		return err
	}
	return want("query after reversing a declined sale (the record stays declined)", q, wsync.ResultDeclined)
}

func scReversalRefunded(ctx context.Context, s *session) error {
	k, _, err := s.approvedSale(ctx, s.a)
	if err != nil {
		return err
	}
	rk := s.key("refund")
	rf, err := s.a.ask(ctx, wsync.KindRefund, rk, s.refund(s.a, rk, k, 200))
	if err != nil {
		return err
	}
	if err := want("partial refund", rf, wsync.ResultApproved); err != nil {
		return err
	}
	rev, err := s.a.ask(ctx, wsync.KindReversal, k, reversal(s.a, k))
	if err != nil {
		return err
	}
	if err := want("reversal of a partly refunded sale", rev, wsync.ResultDeclined); err != nil {
		return err
	}
	q, err := s.a.ask(ctx, wsync.KindQuery, k, query(s.a, k))
	if err != nil {
		return err
	}
	return want("query after the refused reversal", q, wsync.ResultApproved)
}

func scRefund(ctx context.Context, s *session) error {
	k, _, err := s.approvedSale(ctx, s.a)
	if err != nil {
		return err
	}
	rk := s.key("refund")
	req := s.refund(s.a, rk, k, 400)
	r, err := s.a.ask(ctx, wsync.KindRefund, rk, req)
	if err != nil {
		return err
	}
	if err := want("refund of 400 of 1200", r, wsync.ResultApproved); err != nil {
		return err
	}
	again, err := s.a.ask(ctx, wsync.KindRefund, rk, req)
	if err != nil {
		return err
	}
	if again.Status != r.Status || !again.DecidedAt.Equal(r.DecidedAt) {
		return fmt.Errorf("refund resend answered %s at %s, first %s at %s: decided again (or refunded twice)", again.Status, again.DecidedAt, r.Status, r.DecidedAt)
	}
	rest := s.key("refund")
	r, err = s.a.ask(ctx, wsync.KindRefund, rest, s.refund(s.a, rest, k, 800))
	if err != nil {
		return err
	}
	return want("refund of the remaining 800 (the resend must not have counted twice)", r, wsync.ResultApproved)
}

func scRefundAbove(ctx context.Context, s *session) error {
	k, _, err := s.approvedSale(ctx, s.a)
	if err != nil {
		return err
	}
	rk := s.key("refund")
	req := s.refund(s.a, rk, k, amount+1)
	r, err := s.a.ask(ctx, wsync.KindRefund, rk, req)
	if err != nil {
		return err
	}
	if err := want("refund above the sale", r, wsync.ResultDeclined); err != nil {
		return err
	}
	again, err := s.a.ask(ctx, wsync.KindRefund, rk, req)
	if err != nil {
		return err
	}
	if err := want("resend of the declined refund (a declined refund is stored)", again, wsync.ResultDeclined); err != nil {
		return err
	}
	if !again.DecidedAt.Equal(r.DecidedAt) {
		return fmt.Errorf("the declined refund's resend has decided_at %s, the first %s: it was not stored", again.DecidedAt.Format(time.RFC3339Nano), r.DecidedAt.Format(time.RFC3339Nano))
	}
	return nil
}

func scCrossDevice(ctx context.Context, s *session) error {
	k, first, err := s.approvedSale(ctx, s.a)
	if err != nil {
		return err
	}
	other, err := s.b.ask(ctx, wsync.KindPayment, k, s.payment(s.b, k))
	if err != nil {
		return err
	}
	if err := want("the same key from another device", other, wsync.ResultDeclined); err != nil {
		return err
	}
	q, err := s.b.ask(ctx, wsync.KindQuery, k, query(s.b, k))
	if err != nil {
		return err
	}
	if err := want("the other device's query for the key", q, wsync.ResultUnknown); err != nil {
		return err
	}
	rev, err := s.b.ask(ctx, wsync.KindReversal, k, reversal(s.b, k))
	if err != nil {
		return err
	}
	if err := want("the other device's reversal of the key", rev, wsync.ResultDeclined); err != nil {
		return err
	}
	mine, err := s.a.ask(ctx, wsync.KindQuery, k, query(s.a, k))
	if err != nil {
		return err
	}
	if err := want("the owner's query after the other device's attempts", mine, wsync.ResultApproved); err != nil {
		return err
	}
	if !mine.DecidedAt.Equal(first.DecidedAt) {
		return fmt.Errorf("the owner's sale changed: decided_at %s, was %s", mine.DecidedAt, first.DecidedAt)
	}
	return nil
}

func scStale(ctx context.Context, s *session) error {
	k, r, err := s.declinedSale(ctx, s.a)
	if err != nil {
		return err
	}
	again, err := s.a.ask(ctx, wsync.KindPayment, k, s.payment(s.a, k))
	if err != nil {
		return err
	}
	if err := want("a fresh resend of the stale request's key (the decline is stored)", again, wsync.ResultDeclined); err != nil {
		return err
	}
	if !again.DecidedAt.Equal(r.DecidedAt) {
		return fmt.Errorf("the stale request's resend was decided again")
	}
	off := s.key("offline")
	p := s.payment(s.a, off)
	p.Offline, p.CreatedAt = true, time.Now().Add(-2*time.Hour).UTC()
	r, err = s.a.ask(ctx, wsync.KindPayment, off, p)
	if err != nil {
		return err
	}
	return want("a sale stored offline two hours ago (exempt from the staleness rule)", r, wsync.ResultApproved)
}

func scMalformed(ctx context.Context, s *session) error {
	topic := wsync.RequestTopic(s.a.id)
	good := func(k string) map[string]any {
		raw, _ := json.Marshal(s.payment(s.a, k))
		var m map[string]any
		json.Unmarshal(raw, &m)
		return m
	}
	cases := []struct {
		name string
		edit func(k string) []byte
	}{
		{"unknown field", func(k string) []byte { m := good(k); m["tip_minor"] = 100; b, _ := json.Marshal(m); return b }},
		{"version 2", func(k string) []byte { m := good(k); m["v"] = 2; b, _ := json.Marshal(m); return b }},
		{"trailing data", func(k string) []byte { b, _ := json.Marshal(good(k)); return append(b, []byte(` {}`)...) }},
		{"another device in the payload", func(k string) []byte { m := good(k); m["device"] = s.b.id; b, _ := json.Marshal(m); return b }},
		{"amount as a float", func(k string) []byte { m := good(k); m["amount_minor"] = 12.5; b, _ := json.Marshal(m); return b }},
		{"missing created_at", func(k string) []byte { m := good(k); delete(m, "created_at"); b, _ := json.Marshal(m); return b }},
		{"not JSON", func(k string) []byte { return []byte(`{"v":1,"key":"` + k + `",`) }},
	}
	for _, c := range cases {
		k := s.key("malformed")
		if err := s.a.publish(topic, c.edit(k)); err != nil {
			return err
		}
		if err := s.silent(ctx, s.a, wsync.KindPayment, k); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		// Nothing was stored: a well-formed request with the key is decided afresh.
		r, err := s.a.ask(ctx, wsync.KindPayment, k, s.payment(s.a, k))
		if err != nil {
			return fmt.Errorf("%s: the well-formed request after it: %w", c.name, err)
		}
		if err := want(c.name+": the well-formed request after it", r, wsync.ResultApproved); err != nil {
			return err
		}
	}
	bad := s.key("badkey") + " with spaces"
	raw, _ := json.Marshal(s.payment(s.a, bad))
	if err := s.a.publish(topic, raw); err != nil {
		return err
	}
	if err := s.silent(ctx, s.a, wsync.KindPayment, bad); err != nil {
		return fmt.Errorf("key with spaces: %w", err)
	}
	return nil
}

func scOversize(ctx context.Context, s *session) error {
	k := s.key("big")
	p := s.payment(s.a, k)
	p.Operator = strings.Repeat("x", 65<<10) // a valid request, but over 64 KiB
	raw, _ := json.Marshal(p)
	if err := s.a.publish(wsync.RequestTopic(s.a.id), raw); err != nil {
		return err
	}
	if err := s.silent(ctx, s.a, wsync.KindPayment, k); err != nil {
		return err
	}
	r, err := s.a.ask(ctx, wsync.KindPayment, k, s.payment(s.a, k))
	if err != nil {
		return fmt.Errorf("the normal-size request after it: %w", err)
	}
	return want("the normal-size request after the oversize one (nothing was stored)", r, wsync.ResultApproved)
}

// batchSales makes two approved sales and one refund of 300 in a fresh batch.
func (s *session) batchSales(ctx context.Context) (opened time.Time, err error) {
	s.batch = s.key("batch")
	opened = time.Now().UTC()
	k1, _, err := s.approvedSale(ctx, s.a)
	if err != nil {
		return opened, err
	}
	if _, _, err := s.approvedSale(ctx, s.a); err != nil {
		return opened, err
	}
	if _, _, err := s.declinedSale(ctx, s.a); err != nil {
		return opened, err
	}
	rk := s.key("refund")
	r, err := s.a.ask(ctx, wsync.KindRefund, rk, s.refund(s.a, rk, k1, 300))
	if err == nil {
		err = want("refund in the batch", r, wsync.ResultApproved)
	}
	return opened, err
}

func (s *session) closeBatch(ctx context.Context, opened time.Time, totals []wsync.BatchTotal) (*wsync.BatchClose, wsync.PaymentResult, error) {
	c := &wsync.BatchClose{V: wsync.Version, Key: s.batch, Device: s.a.id, Number: 1, OpenedAt: opened,
		ClosedAt: time.Now().UTC(), Totals: totals}
	r, err := s.a.ask(ctx, wsync.KindBatch, s.batch, c)
	return c, r, err
}

func scBatchMatch(ctx context.Context, s *session) error {
	opened, err := s.batchSales(ctx)
	if err != nil {
		return err
	}
	c, r, err := s.closeBatch(ctx, opened, []wsync.BatchTotal{
		{Scheme: "alipay", Currency: currency, SalesCount: 2, SalesMinor: 2 * amount, RefundsCount: 1, RefundsMinor: 300},
		{Scheme: "wechat", Currency: currency}, // a line of zeros equals a missing one
	})
	if err != nil {
		return err
	}
	if err := want("batch close with matching totals (2 sales 2400, 1 refund 300; the declined sale does not count)", r, wsync.ResultRecorded); err != nil {
		return err
	}
	again, err := s.a.ask(ctx, wsync.KindBatch, c.Key, c)
	if err != nil {
		return err
	}
	return want("batch close resent", again, wsync.ResultRecorded)
}

func scBatchMismatch(ctx context.Context, s *session) error {
	opened, err := s.batchSales(ctx)
	if err != nil {
		return err
	}
	c, r, err := s.closeBatch(ctx, opened, []wsync.BatchTotal{
		{Scheme: "alipay", Currency: currency, SalesCount: 3, SalesMinor: 3 * amount, RefundsCount: 1, RefundsMinor: 300},
	})
	if err != nil {
		return err
	}
	if err := want("batch close claiming 3 sales (the cloud has 2)", r, wsync.ResultDeclined); err != nil {
		return err
	}
	if r.Reason == "" {
		return fmt.Errorf("a mismatching batch is declined without a reason: the clerk cannot see what differs")
	}
	c.Totals[0].SalesCount, c.Totals[0].SalesMinor = 2, 2*amount // now it would match
	again, err := s.a.ask(ctx, wsync.KindBatch, c.Key, c)
	if err != nil {
		return err
	}
	if err := want("batch close resent (the stored answer stays, even with other totals)", again, wsync.ResultDeclined); err != nil {
		return err
	}
	return nil
}

func scRestart(ctx context.Context, s *session) error {
	if s.cfg.StopCloud == nil || s.cfg.StartCloud == nil {
		return fmt.Errorf("%w: needs hooks that stop and start the cloud (posctl conformance -stop-cmd and -start-cmd)", errSkip)
	}
	answered, first, err := s.approvedSale(ctx, s.a)
	if err != nil {
		return err
	}
	if err := s.cfg.StopCloud(ctx); err != nil {
		return fmt.Errorf("stopping the cloud: %w", err)
	}
	// The canary is published once while the cloud is down and never resent: a cloud
	// with a clean session never sees it; one with a persistent session gets it
	// queued by the broker.
	canary := s.key("canary")
	if _, err := s.a.send(wsync.KindPayment, s.payment(s.a, canary)); err != nil {
		return err
	}
	var keys []string
	msgs := map[string]*wsync.PaymentRequest{}
	for i := 0; i < 3; i++ {
		k := s.key("queued")
		keys = append(keys, k)
		msgs[k] = s.payment(s.a, k)
		if _, err := s.a.send(wsync.KindPayment, msgs[k]); err != nil {
			return err
		}
	}
	// A cloud with a persistent session would find these (and older) requests queued.
	// The answered sale is resent as a device would, after the restart.
	if err := s.cfg.StartCloud(ctx); err != nil {
		return fmt.Errorf("starting the cloud: %w", err)
	}
	// Resend every unanswered request until it is answered, as a device does. A
	// restarted cloud may take a while to subscribe again on a loaded machine: at
	// least 30 s.
	deadline := time.Now().Add(max(6*s.cfg.Timeout, 30*time.Second))
	for _, k := range keys {
		for s.a.count(wsync.KindPayment, k) == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("the queued request %s was never answered after the restart", k)
			}
			if _, err := s.a.send(wsync.KindPayment, msgs[k]); err != nil {
				return err
			}
			if _, err := s.a.await(ctx, wsync.KindPayment, k, 0); err == nil {
				break
			}
		}
	}
	var decided time.Time
	for _, k := range keys {
		r, _ := s.a.await(ctx, wsync.KindPayment, k, 0)
		if err := want("queued request "+k+" after the restart", r, wsync.ResultApproved); err != nil {
			return err
		}
		if decided.IsZero() {
			decided = r.DecidedAt
		}
		// Every answer for one key must carry one decision.
		time.Sleep(s.cfg.Quiet)
		s.a.mu.Lock()
		for _, o := range s.a.results {
			if o.Key == k && !o.DecidedAt.Equal(r.DecidedAt) {
				s.a.mu.Unlock()
				return fmt.Errorf("the queued request %s was decided twice (%s and %s)", k, r.DecidedAt, o.DecidedAt)
			}
		}
		s.a.mu.Unlock()
	}
	if s.a.count(wsync.KindPayment, canary) > 0 {
		return fmt.Errorf("a request published while the cloud was down, and never resent, was answered after the restart: the broker queued it for the cloud, whose session is not clean (docs/protocol.md, \"The cloud's session\")")
	}
	if n := s.a.count(wsync.KindPayment, answered); n != 1 {
		return fmt.Errorf("the sale answered before the restart was answered %d times without being resent: the broker redelivered it to the cloud", n)
	}
	again, err := s.a.ask(ctx, wsync.KindPayment, answered, s.payment(s.a, answered))
	if err != nil {
		return err
	}
	if !again.DecidedAt.Equal(first.DecidedAt) {
		return fmt.Errorf("the sale answered before the restart was decided again after it (the ledger did not survive?)")
	}
	return nil
}
