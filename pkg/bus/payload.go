package bus

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultMaxPayload is NATS's default limit on a message, data and headers
// (the server's max_payload), for a bus with no connection to ask.
const DefaultMaxPayload = 1 << 20

// MaxPayload is the largest message, data and headers, the server takes.
func (b *Bus) MaxPayload() int64 {
	if b == nil || b.NC == nil {
		return DefaultMaxPayload
	}
	if m := b.NC.MaxPayload(); m > 0 {
		return m
	}
	return DefaultMaxPayload
}

// PayloadSize is what the server counts against its max payload for data
// published with the Nats-Msg-Id msgID (Publish, PublishAsync): the data
// and the headers.
func PayloadSize(data []byte, msgID string) int {
	m := nats.Msg{Subject: "_", Data: data, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	return m.Size() - len(m.Subject)
}
