package core

import (
	"bufio"
	"encoding/binary"

	"github.com/gobwas/ws"
)

// Frame headers are parsed and encoded here rather than with
// ws.ReadHeaderBuffer and ws.WriteHeaderBuffer, which move bytes through
// io.Reader and io.Writer calls: parsing in place from bufio.Reader.Peek and
// encoding straight into bufio.Writer.AvailableBuffer, header and payload in
// one copy, measured faster for small frames (bench/core, the rr/16B row).
// The wire format and the ws.Header type are gobwas/ws's.

// errHeaderMSB: a 64-bit payload length with its most significant bit set.
var errHeaderMSB = protocolError("payload length with its most significant bit set")

// peekHeader parses the next frame header from br without consuming it,
// except for the masking key. It returns the header and its size on the
// wire. It peeks only as far as the length needs: the key (the last 4
// bytes of a masked header) is read with the payload by readMask, so that a
// small frame costs two peeks, not three.
func (c *Conn) peekHeader(br *bufio.Reader) (h ws.Header, size int, err error) {
	c.mayBlock(2)
	b, err := br.Peek(2)
	if err != nil {
		return h, 0, err
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	length := b[1] & 0x7f
	size = 2
	switch length {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if size > 2 {
		c.mayBlock(size)
		if b, err = br.Peek(size); err != nil {
			return h, 0, err
		}
	}
	switch length {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		if b[2]&0x80 != 0 {
			return h, 0, errHeaderMSB
		}
		h.Length = int64(binary.BigEndian.Uint64(b[2:10]))
	default:
		h.Length = int64(length)
	}
	if h.Masked {
		size += 4
	}
	return h, size, nil
}

// readMask copies the masking key from b, which holds at least the whole
// header of size bytes.
func readMask(h *ws.Header, b []byte, size int) {
	if h.Masked {
		copy(h.Mask[:], b[size-4:size])
	}
}

// appendHeader appends the wire form of h to b.
func appendHeader(b []byte, h ws.Header) []byte {
	b0 := h.Rsv<<4 | byte(h.OpCode)
	if h.Fin {
		b0 |= 0x80
	}
	var mask byte
	if h.Masked {
		mask = 0x80
	}
	switch {
	case h.Length < 126:
		b = append(b, b0, mask|byte(h.Length))
	case h.Length <= 0xffff:
		b = append(b, b0, mask|126)
		b = binary.BigEndian.AppendUint16(b, uint16(h.Length))
	default:
		b = append(b, b0, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(h.Length))
	}
	if h.Masked {
		b = append(b, h.Mask[:]...)
	}
	return b
}
