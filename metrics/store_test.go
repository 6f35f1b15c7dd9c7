package metrics

import (
	"context"
	"errors"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/mxircd/mxircd/store"
	"github.com/mxircd/mxircd/store/storetest"
)

// Each store call is timed under its method's name; "not found" is an
// answer, not a failure, and passes through unchanged.
func TestStoreTiming(t *testing.T) {
	for _, driver := range storetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			m := New()
			st := m.Store(storetest.Open(t, driver))
			ctx := context.Background()
			if _, err := st.Account(ctx, "@nobody:example.org"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Account of nobody: %v", err)
			}
			if err := st.PutAccount(ctx, &store.Account{UserID: "@alice:example.org", Homeserver: "http://hs"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Account(ctx, "@alice:example.org"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.SyncState(ctx, "@alice:example.org"); err != nil {
				t.Fatal(err)
			}
			if n := len(series(t, m, "mxircd_store_duration_seconds")); n != 3 {
				t.Errorf("%d ops timed, want Account, PutAccount and SyncState", n)
			}
			for op, want := range map[string]uint64{"Account": 2, "PutAccount": 1, "SyncState": 1} {
				if got := histogramCount(t, m, op); got != want {
					t.Errorf("%s timed %d times, want %d", op, got, want)
				}
			}
			if n := len(series(t, m, "mxircd_store_errors_total")); n != 0 {
				t.Errorf("%d store errors counted, want none", n)
			}
		})
	}
}

// series is the metrics of one family, by their op label.
func series(t *testing.T, m *Metrics, name string) map[string]*dto.Metric {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "op" {
					out[l.GetValue()] = s
				}
			}
		}
	}
	return out
}

func histogramCount(t *testing.T, m *Metrics, op string) uint64 {
	t.Helper()
	return series(t, m, "mxircd_store_duration_seconds")[op].GetHistogram().GetSampleCount()
}
