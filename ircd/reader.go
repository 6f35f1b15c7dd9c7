package ircd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Line limits from the IRCv3 message-tags specification: the tag section a
// client may send is at most 4094 bytes plus the leading '@' and the space
// after it; the rest of the line is at most 512 bytes including CRLF.
const (
	MaxTagBytes  = 4096
	MaxLineBytes = 512
)

// ErrLineTooLong is returned for a line that breaks a limit. The line has been
// consumed and discarded, so the reader can go on with the next one.
var ErrLineTooLong = errors.New("line too long")

// LineReader reads IRC lines without ever holding more than one bounded line
// in memory. bufio.Reader.ReadSlice alone would fail on a long line with the
// rest still unread; this discards the rest up to the next newline instead.
type LineReader struct {
	r *bufio.Reader
}

// NewLineReader wraps r with a buffer just big enough for the longest legal line.
func NewLineReader(r io.Reader) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, MaxTagBytes+MaxLineBytes)}
}

// ReadLine returns the next line without its line ending. Empty lines are
// skipped, as RFC 1459 asks. The returned slice is only valid until the next
// call. An oversized line yields ErrLineTooLong; an I/O error ends reading.
func (lr *LineReader) ReadLine() ([]byte, error) {
	for {
		line, err := lr.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if derr := lr.discardLine(); derr != nil {
				return nil, derr
			}
			return nil, ErrLineTooLong
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				// A last line without a newline is still a line.
				err = nil
			} else {
				return nil, err
			}
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			continue
		}
		if !withinLimits(line) {
			return nil, ErrLineTooLong
		}
		return line, nil
	}
}

func (lr *LineReader) discardLine() error {
	for {
		_, err := lr.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return err
	}
}

// withinLimits checks the tag section and the message separately: a client
// may not spend its tag allowance on a longer message, nor the reverse.
func withinLimits(line []byte) bool {
	msg := line
	if line[0] == '@' {
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			return len(line)+1 <= MaxTagBytes
		}
		if sp+1 > MaxTagBytes {
			return false
		}
		msg = line[sp+1:]
	}
	return len(msg)+2 <= MaxLineBytes
}
