package metrics

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mxircd/mxircd/store"
)

// Store wraps st so that each call is timed under its method's name
// (mxircd_store_duration_seconds{op}) and each failure other than "not
// found" counted. It embeds st: a method added to store.Store later works
// untimed until it is listed here.
func (m *Metrics) Store(st store.Store) store.Store {
	return &timedStore{Store: st, m: m}
}

type timedStore struct {
	store.Store
	m *Metrics
}

func (s *timedStore) observe(op string, start time.Time, err error) {
	s.m.storeDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, context.Canceled) {
		s.m.storeErrors.WithLabelValues(op).Inc()
	}
}

func timed[T any](s *timedStore, op string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	s.observe(op, start, err)
	return v, err
}

func (s *timedStore) timedErr(op string, f func() error) error {
	start := time.Now()
	err := f()
	s.observe(op, start, err)
	return err
}

func (s *timedStore) Account(ctx context.Context, userID id.UserID) (*store.Account, error) {
	return timed(s, "Account", func() (*store.Account, error) { return s.Store.Account(ctx, userID) })
}

func (s *timedStore) PutAccount(ctx context.Context, a *store.Account) error {
	return s.timedErr("PutAccount", func() error { return s.Store.PutAccount(ctx, a) })
}

func (s *timedStore) PutSetting(ctx context.Context, name, value string) error {
	return s.timedErr("PutSetting", func() error { return s.Store.PutSetting(ctx, name, value) })
}

func (s *timedStore) InitSetting(ctx context.Context, name, value string) (string, error) {
	return timed(s, "InitSetting", func() (string, error) { return s.Store.InitSetting(ctx, name, value) })
}

func (s *timedStore) Setting(ctx context.Context, name string) (string, error) {
	return timed(s, "Setting", func() (string, error) { return s.Store.Setting(ctx, name) })
}

func (s *timedStore) ChannelNames(ctx context.Context, userID id.UserID) (map[id.RoomID]string, error) {
	return timed(s, "ChannelNames", func() (map[id.RoomID]string, error) { return s.Store.ChannelNames(ctx, userID) })
}

func (s *timedStore) PutChannelNames(ctx context.Context, userID id.UserID, names map[id.RoomID]string) error {
	return s.timedErr("PutChannelNames", func() error { return s.Store.PutChannelNames(ctx, userID, names) })
}

func (s *timedStore) ReadMarkers(ctx context.Context, userID id.UserID) (map[string]int64, error) {
	return timed(s, "ReadMarkers", func() (map[string]int64, error) { return s.Store.ReadMarkers(ctx, userID) })
}

func (s *timedStore) PutReadMarker(ctx context.Context, userID id.UserID, target string, ts int64) error {
	return s.timedErr("PutReadMarker", func() error { return s.Store.PutReadMarker(ctx, userID, target, ts) })
}

func (s *timedStore) SaveSync(ctx context.Context, b *store.SyncBatch) ([]int64, error) {
	return timed(s, "SaveSync", func() ([]int64, error) { return s.Store.SaveSync(ctx, b) })
}

func (s *timedStore) SyncState(ctx context.Context, userID id.UserID) (token string, head int64, err error) {
	start := time.Now()
	token, head, err = s.Store.SyncState(ctx, userID)
	s.observe("SyncState", start, err)
	return token, head, err
}

func (s *timedStore) AccountRooms(ctx context.Context, userID id.UserID) (rooms []store.AccountRoom, ok bool, err error) {
	start := time.Now()
	rooms, ok, err = s.Store.AccountRooms(ctx, userID)
	s.observe("AccountRooms", start, err)
	return rooms, ok, err
}

func (s *timedStore) RoomState(ctx context.Context, roomID id.RoomID) ([][]byte, error) {
	return timed(s, "RoomState", func() ([][]byte, error) { return s.Store.RoomState(ctx, roomID) })
}

func (s *timedStore) StreamRange(ctx context.Context, userID id.UserID, after, upTo int64, perRoom int) ([]store.StoredEvent, map[id.RoomID]int, error) {
	start := time.Now()
	evs, left, err := s.Store.StreamRange(ctx, userID, after, upTo, perRoom)
	s.observe("StreamRange", start, err)
	return evs, left, err
}

func (s *timedStore) Cursor(ctx context.Context, userID id.UserID, client string) (seq int64, ok bool, err error) {
	start := time.Now()
	seq, ok, err = s.Store.Cursor(ctx, userID, client)
	s.observe("Cursor", start, err)
	return seq, ok, err
}

func (s *timedStore) PutCursor(ctx context.Context, userID id.UserID, client string, seq int64) error {
	return s.timedErr("PutCursor", func() error { return s.Store.PutCursor(ctx, userID, client, seq) })
}

func (s *timedStore) RecentStreamIDs(ctx context.Context, userID id.UserID, roomID id.RoomID, limit int) ([]id.EventID, error) {
	return timed(s, "RecentStreamIDs", func() ([]id.EventID, error) { return s.Store.RecentStreamIDs(ctx, userID, roomID, limit) })
}

func (s *timedStore) RoomsOver(ctx context.Context, keep int) ([]id.RoomID, error) {
	return timed(s, "RoomsOver", func() ([]id.RoomID, error) { return s.Store.RoomsOver(ctx, keep) })
}

func (s *timedStore) PutCursors(ctx context.Context, updates []store.CursorUpdate) error {
	return s.timedErr("PutCursors", func() error { return s.Store.PutCursors(ctx, updates) })
}

func (s *timedStore) FindByTxn(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string) (*store.StoredEvent, error) {
	return timed(s, "FindByTxn", func() (*store.StoredEvent, error) { return s.Store.FindByTxn(ctx, roomID, sender, txnID) })
}

func (s *timedStore) MaxCursor(ctx context.Context, userID id.UserID) (seq int64, ok bool, err error) {
	start := time.Now()
	seq, ok, err = s.Store.MaxCursor(ctx, userID)
	s.observe("MaxCursor", start, err)
	return seq, ok, err
}

func (s *timedStore) RoomHistory(ctx context.Context, q store.HistoryQuery) ([]store.StoredEvent, error) {
	return timed(s, "RoomHistory", func() ([]store.StoredEvent, error) { return s.Store.RoomHistory(ctx, q) })
}

func (s *timedStore) FindEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*store.StoredEvent, error) {
	return timed(s, "FindEvent", func() (*store.StoredEvent, error) { return s.Store.FindEvent(ctx, roomID, eventID) })
}

func (s *timedStore) LastEventBefore(ctx context.Context, roomID id.RoomID, viewer id.UserID, ts int64, types []string) (*store.StoredEvent, error) {
	return timed(s, "LastEventBefore", func() (*store.StoredEvent, error) {
		return s.Store.LastEventBefore(ctx, roomID, viewer, ts, types)
	})
}

func (s *timedStore) Targets(ctx context.Context, userID id.UserID, fromTS, toTS int64, limit int, types []string) ([]store.Target, error) {
	return timed(s, "Targets", func() ([]store.Target, error) { return s.Store.Targets(ctx, userID, fromTS, toTS, limit, types) })
}

func (s *timedStore) Prune(ctx context.Context, roomID id.RoomID, keep int) error {
	return s.timedErr("Prune", func() error { return s.Store.Prune(ctx, roomID, keep) })
}

func (s *timedStore) PutOutbox(ctx context.Context, e ...*store.OutboxEntry) error {
	return s.timedErr("PutOutbox", func() error { return s.Store.PutOutbox(ctx, e...) })
}

func (s *timedStore) ResolveOutboxPeer(ctx context.Context, userID, peer id.UserID, roomID id.RoomID) error {
	return s.timedErr("ResolveOutboxPeer", func() error { return s.Store.ResolveOutboxPeer(ctx, userID, peer, roomID) })
}

func (s *timedStore) DeleteOutbox(ctx context.Context, userID id.UserID, txnID string) error {
	return s.timedErr("DeleteOutbox", func() error { return s.Store.DeleteOutbox(ctx, userID, txnID) })
}

func (s *timedStore) Outbox(ctx context.Context, userID id.UserID) ([]store.OutboxEntry, error) {
	return timed(s, "Outbox", func() ([]store.OutboxEntry, error) { return s.Store.Outbox(ctx, userID) })
}

func (s *timedStore) RoomCreateFullAt(ctx context.Context, userID id.UserID) (time.Time, error) {
	return timed(s, "RoomCreateFullAt", func() (time.Time, error) { return s.Store.RoomCreateFullAt(ctx, userID) })
}

func (s *timedStore) PutRoomCreateFullAt(ctx context.Context, userID id.UserID, at time.Time) error {
	return s.timedErr("PutRoomCreateFullAt", func() error { return s.Store.PutRoomCreateFullAt(ctx, userID, at) })
}

func (s *timedStore) AlwaysOnAccounts(ctx context.Context, def bool) ([]id.UserID, error) {
	return timed(s, "AlwaysOnAccounts", func() ([]id.UserID, error) { return s.Store.AlwaysOnAccounts(ctx, def) })
}
