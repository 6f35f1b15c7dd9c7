package session

import (
	"bytes"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
)

// A message to an encrypted room is in the outbox only sealed: its text is
// not in the row, it opens with the key only for the row it was sealed for.
func TestOutboxRowSealedAtRest(t *testing.T) {
	key := OutboxKeyFrom(bytes.Repeat([]byte{7}, 32))
	content := []byte(`{"msgtype":"m.text","body":"the secret plan"}`)
	row, err := sealRow(key, "@a:x", "txn1", event.EventMessage, content)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(row), "secret") {
		t.Fatalf("the sealed row shows the text: %s", row)
	}
	evType, opened, err := openRow(key, "@a:x", "txn1", row)
	if err != nil || evType != event.EventMessage || !bytes.Equal(opened, content) {
		t.Fatalf("openRow = %v, %s, %v; want %v, %s", evType, opened, err, event.EventMessage, content)
	}
	if _, _, err := openRow(key, "@a:x", "txn2", row); err == nil {
		t.Error("a row opened under another transaction ID")
	}
	if _, _, err := openRow(OutboxKeyFrom(bytes.Repeat([]byte{8}, 32)), "@a:x", "txn1", row); err == nil {
		t.Error("a row opened with another key")
	}
	if _, _, err := openRow(key, "@a:x", "txn1", []byte(`{"type":"m.room.message","sealed":"AAAA"}`)); err == nil {
		t.Error("a truncated row opened")
	}
}
