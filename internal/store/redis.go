// SPDX-License-Identifier: Apache-2.0

package store

// Implementation notes.
//
// Record format of <prefix>mb:{<id>}: one Redis string holding the whole
// mailbox (codec.go), sealed as a unit with secret.Box under associated data
// "mailbox:<id>". Whole-record sealing rather than only Password/AccessToken:
//   - integrity: an attacker with write access to Redis cannot point Host at
//     their own server (or Endpoint at theirs) and have a node log in there with
//     the decrypted password; every field is authenticated, and the associated
//     data stops a record being copied to another mailbox id;
//   - confidentiality of the rest: user names, sender addresses, the Creatio
//     callback URL and Context are personal or internal data too;
//   - size: one nonce and tag (29 bytes) per record instead of one per field.
// The cost is that redis-cli shows opaque bytes for mailbox records (cursors
// and status records are not secret and stay readable or decodable).
//
// The first byte tells the formats apart: secret.Box versions start at 1, and
// 0 marks a plaintext record (only written with AllowPlaintext). A store with a
// Box refuses plaintext records unless AllowPlaintext is also set (to migrate),
// since accepting them would bypass the authentication above.
//
// Ordering without transactions (the ids set and a mailbox's keys live in
// different Cluster slots): PutMailbox adds the id to the set before writing the
// record, DeleteMailbox deletes the record before removing the id. A crash in
// between leaves an id without a record, which Mailboxes skips, rather than a
// record that listing cannot find. (Only a PutMailbox racing a DeleteMailbox of
// the same id can leave a record unlisted, until that id's next PutMailbox;
// Creatio does not create and close one mailbox at the same moment.)

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/redisconf"
	"github.com/emaillistener/emaillistener/internal/secret"
)

//go:embed scripts/put_cursor.lua
var putCursorLua string

var putCursorScript = redis.NewScript(putCursorLua)

// plaintextRecord is the first byte of a mailbox record stored without sealing.
const plaintextRecord byte = 0

// listBatch bounds the GETs sent in one pipeline by Mailboxes and Statuses.
const listBatch = 500

// ErrNoKey is returned by NewRedis without a secret.Box unless AllowPlaintext.
var ErrNoKey = errors.New("store: refusing to keep credentials in Redis unencrypted: " +
	"set EL_SECRET_KEY or EL_SECRET_KEY_FILE (or EL_ALLOW_PLAINTEXT_SECRETS=true)")

// RedisOptions configures NewRedis. A nil *RedisOptions is the zero value, which
// NewRedis refuses because it has neither Box nor AllowPlaintext.
type RedisOptions struct {
	// Prefix starts every key; empty means redisconf.DefaultPrefix ("el:"). Must not
	// contain { or }.
	Prefix string
	// Box seals mailbox records (credentials at rest). Required unless
	// AllowPlaintext.
	Box *secret.Box
	// AllowPlaintext permits storing mailbox records unsealed when Box is nil,
	// and reading plaintext records when Box is set (migration to a key).
	AllowPlaintext bool
	// Logger receives one line per record that cannot be opened (default:
	// discard); Registerer the gauge of such records.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Redis is the store for clusters, on any go-redis UniversalClient (single
// node, Sentinel or Cluster). It is safe for concurrent use. Besides its
// configuration it keeps only the quarantine of records it could not open
// (quarantine.go).
type Redis struct {
	rdb            redis.UniversalClient
	k              keys
	box            *secret.Box
	allowPlaintext bool
	q              *quarantine
}

// NewRedis returns a store on rdb. It does no I/O; call Ping to check the
// connection.
func NewRedis(rdb redis.UniversalClient, opts *RedisOptions) (*Redis, error) {
	var o RedisOptions
	if opts != nil {
		o = *opts
	}
	if rdb == nil {
		return nil, errors.New("store: NewRedis: client is nil")
	}
	if o.Box == nil && !o.AllowPlaintext {
		return nil, ErrNoKey
	}
	if o.Prefix == "" {
		o.Prefix = redisconf.DefaultPrefix
	}
	if err := validPrefix(o.Prefix); err != nil {
		return nil, err
	}
	return &Redis{rdb: rdb, k: keys{prefix: o.Prefix}, box: o.Box, allowPlaintext: o.AllowPlaintext,
		q: newQuarantine(o.Logger, o.Registerer)}, nil
}

// Epoch returns the marker of the stored data set, creating it when there is
// none (SET NX). It is created once per data set, so a marker different from
// one read earlier means Redis lost its data in between (restart without
// persistence, failover to an empty replica), which is not every mailbox
// being closed.
func (s *Redis) Epoch(ctx context.Context) (string, error) {
	key := s.k.epoch()
	fresh := strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := s.rdb.SetNX(ctx, key, fresh, 0).Err(); err != nil {
		return "", fmt.Errorf("store: epoch: %w", err)
	}
	cur, err := s.rdb.Get(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("store: epoch: %w", err)
	}
	return cur, nil
}

// IsMissing reports whether err means a registered id has no record to run:
// listed without one (a crash between the two writes of PutMailbox or
// DeleteMailbox) or one that cannot be opened (quarantined).
func IsMissing(err error) bool {
	var re *RecordError
	return errors.Is(err, ErrNotFound) || errors.As(err, &re)
}

// Ping checks that Redis answers, for readiness.
func (s *Redis) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: redis ping: %w", err)
	}
	return nil
}

func adFor(id mail.MailboxID) []byte { return []byte("mailbox:" + string(id)) }

// seal produces the stored form of a mailbox record.
func (s *Redis) seal(m *mail.Mailbox) []byte {
	plain := encodeMailbox(m)
	if s.box == nil {
		return append([]byte{plaintextRecord}, plain...)
	}
	return s.box.SealAD(plain, adFor(m.ID))
}

// open decodes a stored mailbox record; a record it cannot open is a
// *RecordError and goes to the quarantine, a readable one leaves it.
func (s *Redis) open(id mail.MailboxID, rec []byte) (*mail.Mailbox, error) {
	m, err := s.openRecord(id, rec)
	if err != nil {
		err = &RecordError{ID: id, Err: err}
		s.q.add(id, err)
		return nil, err
	}
	s.q.remove(id)
	return m, nil
}

func (s *Redis) openRecord(id mail.MailboxID, rec []byte) (*mail.Mailbox, error) {
	if len(rec) == 0 {
		return nil, fmt.Errorf("store: mailbox %s: empty record", id)
	}
	var plain []byte
	switch {
	case rec[0] == plaintextRecord:
		if s.box != nil && !s.allowPlaintext {
			return nil, fmt.Errorf("store: mailbox %s: record is not encrypted (set EL_ALLOW_PLAINTEXT_SECRETS=true to read it once)", id)
		}
		plain = rec[1:]
	case s.box == nil:
		return nil, fmt.Errorf("store: mailbox %s: record is encrypted and no secret key is configured", id)
	default:
		var err error
		if plain, err = s.box.OpenAD(rec, adFor(id)); err != nil {
			return nil, fmt.Errorf("store: mailbox %s: %w", id, err)
		}
	}
	m, err := decodeMailbox(id, plain)
	if err != nil {
		return nil, fmt.Errorf("store: mailbox %s: %w", id, err)
	}
	return m, nil
}

// PutMailbox registers or replaces a mailbox. Cursors and status are kept.
func (s *Redis) PutMailbox(ctx context.Context, m *mail.Mailbox) error {
	if m.ID == "" {
		return ErrInvalidID
	}
	if err := s.rdb.SAdd(ctx, s.k.mailboxes(), string(m.ID)).Err(); err != nil {
		return fmt.Errorf("store: put mailbox %s: %w", m.ID, err)
	}
	if err := s.rdb.Set(ctx, s.k.mailbox(m.ID), s.seal(m), 0).Err(); err != nil {
		return fmt.Errorf("store: put mailbox %s: %w", m.ID, err)
	}
	s.q.remove(m.ID) // re-registered: sealed with this node's key
	return nil
}

// Mailbox returns the registered mailbox, or ErrNotFound.
func (s *Redis) Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	rec, err := s.rdb.Get(ctx, s.k.mailbox(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get mailbox %s: %w", id, err)
	}
	return s.open(id, rec)
}

// MailboxIDs returns the ids of every registered mailbox, ordered, without
// reading their records.
func (s *Redis) MailboxIDs(ctx context.Context) ([]mail.MailboxID, error) {
	ids, err := s.rdb.SMembers(ctx, s.k.mailboxes()).Result()
	if err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	out := make([]mail.MailboxID, len(ids))
	for i, id := range ids {
		out[i] = mail.MailboxID(id)
	}
	slices.Sort(out)
	return out, nil
}

// Mailboxes returns every registered mailbox, ordered by id. Ids listed without
// a record (a crash between the two writes of PutMailbox or DeleteMailbox) are
// skipped, and so are records that cannot be opened (wrong secret key,
// corruption): they are quarantined (see Health) so that one bad record does
// not keep every other mailbox from being served.
func (s *Redis) Mailboxes(ctx context.Context) ([]*mail.Mailbox, error) {
	ids, err := s.rdb.SMembers(ctx, s.k.mailboxes()).Result()
	if err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	slices.Sort(ids)
	out := make([]*mail.Mailbox, 0, len(ids))
	for chunk := range slices.Chunk(ids, listBatch) {
		cmds, err := s.getAll(ctx, chunk, func(id string) string { return s.k.mailbox(mail.MailboxID(id)) })
		if err != nil {
			return nil, fmt.Errorf("store: list mailboxes (%d): %w", len(ids), err)
		}
		for i, cmd := range cmds {
			rec, err := cmd.Bytes()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("store: list mailboxes: %w", err)
			}
			m, err := s.open(mail.MailboxID(chunk[i]), rec)
			if err != nil {
				continue // quarantined by open
			}
			out = append(out, m)
		}
	}
	s.q.listed(len(out))
	return out, nil
}

// getAll GETs the keys of ids in one pipeline (split per node by the Cluster
// client). Missing keys come back as commands holding redis.Nil.
func (s *Redis) getAll(ctx context.Context, ids []string, key func(string) string) ([]*redis.StringCmd, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, key(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	return cmds, nil
}

// DeleteMailbox forgets a mailbox, its cursors and its status. Unknown ids are
// not an error.
func (s *Redis) DeleteMailbox(ctx context.Context, id mail.MailboxID) error {
	if id == "" {
		return nil
	}
	// One DEL: the three keys share the {id} hash tag, hence one slot.
	if err := s.rdb.Del(ctx, s.k.mailbox(id), s.k.cursors(id), s.k.status(id)).Err(); err != nil {
		return fmt.Errorf("store: delete mailbox %s: %w", id, err)
	}
	s.q.remove(id)
	if err := s.rdb.SRem(ctx, s.k.mailboxes(), string(id)).Err(); err != nil {
		return fmt.Errorf("store: delete mailbox %s: %w", id, err)
	}
	return nil
}

// Cursor returns the cursor of one folder and whether it exists.
func (s *Redis) Cursor(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error) {
	if id == "" {
		return mail.Cursor{}, false, nil
	}
	v, err := s.rdb.HGet(ctx, s.k.cursors(id), folder).Result()
	if errors.Is(err, redis.Nil) {
		return mail.Cursor{}, false, nil
	}
	if err != nil {
		return mail.Cursor{}, false, fmt.Errorf("store: get cursor %s %q: %w", id, folder, err)
	}
	c, err := decodeCursor(v)
	if err != nil {
		return mail.Cursor{}, false, fmt.Errorf("store: get cursor %s %q: %w", id, folder, err)
	}
	return c, true, nil
}

// PutCursor stores the cursor of one folder unless c.Fence is lower than the
// fence stored with it (ErrStaleFence), atomically (scripts/put_cursor.lua).
func (s *Redis) PutCursor(ctx context.Context, id mail.MailboxID, folder string, c mail.Cursor) error {
	if id == "" {
		return ErrInvalidID
	}
	fence := strconv.FormatUint(c.Fence, 10)
	res, err := putCursorScript.Run(ctx, s.rdb, []string{s.k.cursors(id)}, folder, encodeCursor(c), fence).Slice()
	if err != nil {
		return fmt.Errorf("store: put cursor %s %q: %w", id, folder, err)
	}
	if len(res) != 2 {
		return fmt.Errorf("store: put cursor %s %q: unexpected script reply %v", id, folder, res)
	}
	if ok, _ := res[0].(int64); ok == 1 {
		return nil
	}
	stored, _ := res[1].(string)
	n, _ := strconv.ParseUint(stored, 10, 64)
	return staleFence(id, folder, c.Fence, n)
}

// PutStatus replaces the status record of a mailbox.
func (s *Redis) PutStatus(ctx context.Context, id mail.MailboxID, st mail.Status) error {
	if id == "" {
		return ErrInvalidID
	}
	if err := s.rdb.Set(ctx, s.k.status(id), encodeStatus(st), 0).Err(); err != nil {
		return fmt.Errorf("store: put status %s: %w", id, err)
	}
	return nil
}

// Statuses returns the status records of the given mailboxes; ids without one
// are absent from the map.
func (s *Redis) Statuses(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error) {
	out := make(map[mail.MailboxID]mail.Status, len(ids))
	strs := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			strs = append(strs, string(id))
		}
	}
	for chunk := range slices.Chunk(strs, listBatch) {
		cmds, err := s.getAll(ctx, chunk, func(id string) string { return s.k.status(mail.MailboxID(id)) })
		if err != nil {
			return nil, fmt.Errorf("store: get statuses (%d): %w", len(ids), err)
		}
		for i, cmd := range cmds {
			b, err := cmd.Bytes()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("store: get statuses: %w", err)
			}
			st, err := decodeStatus(b)
			if err != nil {
				return nil, fmt.Errorf("store: status %s: %w", chunk[i], err)
			}
			out[mail.MailboxID(chunk[i])] = st
		}
	}
	return out, nil
}
