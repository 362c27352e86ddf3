package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrBare is returned by the parts of a Bare message that were let go.
var ErrBare = errors.New("bare message: only its subject and reply subject are kept")

// Bare returns a message that keeps only what acknowledging msg needs: its
// subject and reply subject. A consumer that holds many messages while their
// work waits (a prober's predictions) holds a hundred bytes each instead of
// the body and headers. Data and Headers are nil and Metadata fails with
// ErrBare; the acks are the ones jetstream sends.
func Bare(msg jetstream.Msg, nc *nats.Conn) jetstream.Msg {
	return &bareMsg{nc: nc, subject: msg.Subject(), reply: msg.Reply()}
}

type bareMsg struct {
	nc      *nats.Conn
	subject string
	reply   string
}

func (m *bareMsg) Metadata() (*jetstream.MsgMetadata, error) { return nil, ErrBare }
func (m *bareMsg) Data() []byte                              { return nil }
func (m *bareMsg) Headers() nats.Header                      { return nil }
func (m *bareMsg) Subject() string                           { return m.subject }
func (m *bareMsg) Reply() string                             { return m.reply }
func (m *bareMsg) Ack() error                                { return m.send("+ACK") }
func (m *bareMsg) Nak() error                                { return m.send("-NAK") }
func (m *bareMsg) InProgress() error                         { return m.send("+WPI") }
func (m *bareMsg) Term() error                               { return m.send("+TERM") }
func (m *bareMsg) TermWithReason(reason string) error        { return m.send("+TERM " + reason) }

func (m *bareMsg) NakWithDelay(delay time.Duration) error {
	if delay <= 0 {
		return m.Nak()
	}
	return m.send(fmt.Sprintf(`-NAK {"delay": %d}`, delay.Nanoseconds()))
}

// DoubleAck acks and waits for the server to confirm it.
func (m *bareMsg) DoubleAck(ctx context.Context) error {
	if m.reply == "" {
		return jetstream.ErrMsgNoReply
	}
	if _, err := m.nc.RequestWithContext(ctx, m.reply, []byte("+ACK")); err != nil {
		return fmt.Errorf("ack %s: %w", m.subject, err)
	}
	return nil
}

func (m *bareMsg) send(body string) error {
	if m.reply == "" {
		return jetstream.ErrMsgNoReply
	}
	if err := m.nc.Publish(m.reply, []byte(body)); err != nil {
		return fmt.Errorf("reply to %s: %w", m.subject, err)
	}
	return nil
}
