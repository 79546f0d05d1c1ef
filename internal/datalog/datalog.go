// Package datalog is the format of strsvr's data file (store.File): a
// header line, then records that each carry some bytes appended to v. It
// reads, checks and writes bytes only; opening, locking, syncing, upgrading
// and repairing files is store's.
//
// # Format v3 (written since tcplab 2027-01)
//
// The header is one line of 39 bytes:
//
//	tcplab-strsvr-log v3 KKKKKKKK SSSSSSSS\n
//
// KKKKKKKK is the checksum key, 8 random lowercase hexadecimal digits;
// SSSSSSSS is the CRC-32C (Castagnoli) of the 29 bytes before the space
// that precedes it ("tcplab-strsvr-log v3 KKKKKKKK"), in 8 lowercase
// hexadecimal digits. The version is inside what SUM covers, so a header
// edited to name another version fails its check instead of being read
// under that version's rules. SUM is also the seed of every record's
// checksums, which ties each record to this header.
//
// A record at file offset OFF (the first at 39) carrying n bytes of v:
//
//	offset 0   uint32 big-endian  H = CRC-32C(seed SUM; OFF as 8 bytes
//	                              big-endian, then n as 4 bytes big-endian)
//	offset 4   uint32 big-endian  n, 1..MaxRecord
//	offset 8   uint32 big-endian  D = CRC-32C(seed H; the n data bytes)
//	offset 12  n bytes            the data: bytes appended to v, in order
//
// H checks the record's header by itself, so a record whose data is cut
// short (a torn write) can be told from one whose length was changed. D
// continues H, so the data is checked together with its length and its
// place. Every checksum covers the record's offset: a record is valid only
// where it was written, so a record duplicated, deleted, moved, swapped
// with another or appended again (cat v.log >> v.log) fails its check, as
// does a record from another log (another key). v is the data of the
// records in order. One write of the log is one record (but for appends
// over MaxRecord), so a write torn by a crash tears only the last record.
//
// Why a key: clients choose the bytes of records, and could otherwise
// type a letter that reads as a valid record; inside a record torn by a
// crash it would stand after the tear as a "valid record", and turn a
// torn tail, which is cut, into damage, which is refused. Clients never
// see the key, so their look-alikes fail the check (but for one chance in
// 2^32).
//
// # Older formats, read to be upgraded
//
// v1: the header "tcplab-strsvr-log v1\n" (21 bytes); records are n
// (uint32 big-endian), the CRC-32C of the data (seed 0), the data.
//
// v2: the header "tcplab-strsvr-log v2 KKKKKKKK SSSSSSSS\n" with SSSSSSSS
// the CRC-32C of the 8 key digits alone; records as v1, the CRC seeded
// with the key.
//
// Their records do not know their place and their lengths have no check
// of their own; store reads them once, with the same tail policy, and
// rewrites them as v3.
package datalog

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
)

// Version is the format new logs are written in.
const Version = 3

// Magic1 is the whole header of a log of format v1.
const Magic1 = "tcplab-strsvr-log v1\n"

// prefix opens the header of every format.
const prefix = "tcplab-strsvr-log v"

// keyedLen is the length of a v2 or v3 header; sumAt is where its SUM
// starts.
const (
	keyedLen = len(prefix) + 2 + 8 + 1 + 8 + 1
	keyAt    = len(prefix) + 2
	sumAt    = keyAt + 8 + 1
)

// MaxRecord bounds the data of one record. Longer appends are cut into
// several records.
const MaxRecord = 1 << 20

// RecordHeader is the length of a v3 record's header (H, n, D);
// legacyRecordHeader that of v1 and v2 (n, CRC).
const (
	RecordHeader       = 12
	legacyRecordHeader = 8
)

// Sector is the unit a torn write leaves whole or zeroed: the smallest
// sector of a disk. It is what etcd's write-ahead log splits a torn
// record by.
const Sector = 512

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTornHeader is ParseHeader's and Read's error for a file that is the
// start of a header cut short: a log torn while it was being created,
// before any record could be written. It holds no letter.
var ErrTornHeader = errors.New("header cut short (the log was torn as it was created)")

// HeaderError is the refusal of a file whose first line is not a header
// this package can read.
type HeaderError struct{ Reason string }

func (e *HeaderError) Error() string { return e.Reason }

// Header is a parsed header line.
type Header struct {
	Version int    // 1, 2 or 3
	Key     uint32 // the checksum key (0 in v1)
	Len     int    // bytes of the header line
	seed    uint32 // v3: the header's SUM; v1, v2: the key
}

// NewHeader returns the header line of a new log, with a random key.
func NewHeader() ([]byte, Header) {
	var k [4]byte
	rand.Read(k[:])
	return HeaderFor(Version, binary.BigEndian.Uint32(k[:])|1) // never 0, v1's key
}

// HeaderFor returns the header line of a log of format version (1, 2 or
// 3) with key (ignored for v1): for tests, and for store, which keeps a
// log's key when it rewrites the log.
func HeaderFor(version int, key uint32) ([]byte, Header) {
	if version == 1 {
		return []byte(Magic1), Header{Version: 1, Len: len(Magic1)}
	}
	line := fmt.Appendf(nil, "%s%d %08x", prefix, version, key)
	var sum uint32
	if version == 2 {
		sum = crc32.Checksum(line[keyAt:], castagnoli)
	} else {
		sum = crc32.Checksum(line, castagnoli)
	}
	line = fmt.Appendf(line, " %08x\n", sum)
	h := Header{Version: version, Key: key, Len: keyedLen, seed: key}
	if version == 3 {
		h.seed = sum
	}
	return line, h
}

// ParseHeader reads the header at the start of b, which holds the first
// bytes of a file (all of them if the file is shorter than a header). A
// header of a version other than the one it names is never read as that
// other version: its SUM covers the version. It returns ErrTornHeader for a
// file that is a header cut short, and a *HeaderError for anything else
// that is not a header.
func ParseHeader(b []byte) (Header, error) {
	if bytes.HasPrefix(b, []byte(Magic1)) {
		return Header{Version: 1, Len: len(Magic1)}, nil
	}
	if len(b) < keyedLen {
		if tornV3(b) {
			return Header{}, ErrTornHeader
		}
		if bytes.HasPrefix(b, []byte(prefix)) {
			return Header{}, &HeaderError{"damaged header: its first line is cut short"}
		}
		return Header{}, &HeaderError{"not a strsvr data file (bad magic)"}
	}
	line := b[:keyedLen]
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return Header{}, &HeaderError{"not a strsvr data file (bad magic)"}
	}
	version := int(line[len(prefix)]) - '0'
	if version < 2 || version > 9 || line[len(prefix)+1] != ' ' {
		return Header{}, &HeaderError{fmt.Sprintf("damaged header: it names no version this tcplab reads (%q)", line[len(prefix):len(prefix)+2])}
	}
	if version > Version {
		return Header{}, &HeaderError{fmt.Sprintf("written in format v%d, by a newer tcplab: this one reads up to v%d", version, Version)}
	}
	key, err := strconv.ParseUint(string(line[keyAt:keyAt+8]), 16, 32)
	if err != nil || !lowerHex(line[keyAt:keyAt+8]) || line[sumAt-1] != ' ' || line[keyedLen-1] != '\n' {
		return Header{}, &HeaderError{"damaged header: its first line is not a header"}
	}
	want, h := HeaderFor(version, uint32(key))
	if !bytes.Equal(line, want) {
		return Header{}, &HeaderError{"damaged header: the checksum on its first line does not match the line, so no record can be checked"}
	}
	return h, nil
}

func lowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// tornV3 reports whether b is a v3 header cut short: what a crash while
// the log was created can leave.
func tornV3(b []byte) bool {
	want := prefix + "3 "
	if len(b) <= len(want) {
		return string(b) == want[:len(b)]
	}
	if string(b[:len(want)]) != want {
		return false
	}
	for i, c := range b[len(want):] {
		if i == 8 && c != ' ' || i != 8 && !lowerHex([]byte{c}) {
			return false
		}
	}
	return true
}

// HeaderLen returns the length of the header of the log that starts with
// b, or 0 if b holds no whole header.
func HeaderLen(b []byte) int {
	h, err := ParseHeader(b)
	if err != nil {
		return 0
	}
	return h.Len
}

// RecordHeaderLen is the length of a record's header in this log.
func (h Header) RecordHeaderLen() int {
	if h.Version >= 3 {
		return RecordHeader
	}
	return legacyRecordHeader
}

// headSum is H, the checksum of a v3 record's header at off.
func (h Header) headSum(off int64, n uint32) uint32 {
	var b [12]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(off))
	binary.BigEndian.PutUint32(b[8:12], n)
	return crc32.Update(h.seed, castagnoli, b[:])
}

// AppendRecords encodes p as the records that start at file offset off
// (each of at most MaxRecord bytes) onto dst. store writes only v3; the
// older versions are encoded for tests.
func (h Header) AppendRecords(dst []byte, off int64, p []byte) []byte {
	for len(p) > 0 {
		n := min(len(p), MaxRecord)
		at := len(dst)
		if h.Version >= 3 {
			hs := h.headSum(off, uint32(n))
			dst = binary.BigEndian.AppendUint32(dst, hs)
			dst = binary.BigEndian.AppendUint32(dst, uint32(n))
			dst = binary.BigEndian.AppendUint32(dst, crc32.Update(hs, castagnoli, p[:n]))
		} else {
			dst = binary.BigEndian.AppendUint32(dst, uint32(n))
			dst = binary.BigEndian.AppendUint32(dst, crc32.Update(h.seed, castagnoli, p[:n]))
		}
		dst = append(dst, p[:n]...)
		off += int64(len(dst) - at)
		p = p[n:]
	}
	return dst
}

// headerAt reads the header of the record at b[0:], which is at file
// offset off: its data length n, and whether the header holds. In v3 that
// is its own checksum; in v1 and v2, which have none, a length in range.
func (h Header) headerAt(b []byte, off int64) (n int, ok bool) {
	hl := h.RecordHeaderLen()
	if len(b) < hl {
		return 0, false
	}
	if h.Version >= 3 {
		size := binary.BigEndian.Uint32(b[4:8])
		if size == 0 || size > MaxRecord || binary.BigEndian.Uint32(b[0:4]) != h.headSum(off, size) {
			return 0, false
		}
		return int(size), true
	}
	size := binary.BigEndian.Uint32(b[0:4])
	if size == 0 || size > MaxRecord {
		return 0, false
	}
	return int(size), true
}

// RecordLen reads the header of the record at b[0:], at file offset off:
// the length of its data, and whether the header holds (in v1 and v2, a
// length in range), whatever its data.
func (h Header) RecordLen(b []byte, off int64) (n int, ok bool) { return h.headerAt(b, off) }

// WrittenAt reads the v3 record at b[0:] whose header does not check
// where it lies, and reports where it would: the file offset off, below
// limit, at which it was written (a record moved, duplicated, left after
// a deleted one), and the length of its data. ok is false if it checks at
// no offset below limit (and 2^32), if b does not hold its data or its
// data fails its check, and for logs older than v3, whose records do not
// know their place.
//
// H is the CRC of (OFF, n) seeded with SUM, and a CRC is affine in its
// message over GF(2): H xor headSum(0, n) is a linear function of OFF's
// bits, one-to-one on its low 32 (32 consecutive bits of a message, under
// a CRC of degree 32). So OFF below 2^32 is found by solving 32 linear
// equations, not by trying every offset.
func (h Header) WrittenAt(b []byte, limit int64) (off int64, n int, ok bool) {
	if h.Version < 3 || len(b) < RecordHeader {
		return 0, 0, false
	}
	size := binary.BigEndian.Uint32(b[4:8])
	if size == 0 || size > MaxRecord || len(b) < RecordHeader+int(size) {
		return 0, 0, false
	}
	got, found := offsetBits.solve(binary.BigEndian.Uint32(b[0:4]) ^ h.headSum(0, size))
	if !found || int64(got) >= limit || !h.dataOK(b[:RecordHeader], b[RecordHeader:RecordHeader+int(size)]) {
		return 0, 0, false
	}
	return int64(got), int(size), true
}

// gf2Basis inverts the linear map from the low 32 bits of a record's OFF
// to H xor headSum(0, n): rows hold each bit's image, reduced to echelon
// form, with the OFF bits that make it.
type gf2Basis struct {
	img, src [32]uint32
	rows     int
}

var offsetBits = func() (g gf2Basis) {
	var zero, one [12]byte
	base := crc32.Update(0, castagnoli, zero[:])
	for i := range 32 {
		one = zero
		binary.BigEndian.PutUint32(one[4:8], 1<<i) // OFF's bit i
		img, src := crc32.Update(0, castagnoli, one[:])^base, uint32(1)<<i
		for r := range g.rows { // reduce by the rows so far
			if top := g.img[r] & -g.img[r]; img&top != 0 {
				img, src = img^g.img[r], src^g.src[r]
			}
		}
		if img == 0 {
			continue
		}
		top := img & -img
		for r := range g.rows { // keep each row's lowest bit its own
			if g.img[r]&top != 0 {
				g.img[r], g.src[r] = g.img[r]^img, g.src[r]^src
			}
		}
		g.img[g.rows], g.src[g.rows] = img, src
		g.rows++
	}
	return g
}()

// solve returns the OFF below 2^32 whose image is t.
func (g *gf2Basis) solve(t uint32) (uint32, bool) {
	var off uint32
	for r := range g.rows {
		if t&(g.img[r]&-g.img[r]) != 0 {
			t, off = t^g.img[r], off^g.src[r]
		}
	}
	return off, t == 0
}

// dataOK reports whether data checks against hdr, a record header that
// headerAt accepted.
func (h Header) dataOK(hdr, data []byte) bool {
	if h.Version >= 3 {
		return crc32.Update(binary.BigEndian.Uint32(hdr[0:4]), castagnoli, data) == binary.BigEndian.Uint32(hdr[8:12])
	}
	return crc32.Update(h.seed, castagnoli, data) == binary.BigEndian.Uint32(hdr[4:8])
}

// RecordAt reports the length of the valid record at b[0:], which is at
// file offset off, or 0 if none is there.
func (h Header) RecordAt(b []byte, off int64) int {
	n, ok := h.headerAt(b, off)
	hl := h.RecordHeaderLen()
	if !ok || len(b) < hl+n || !h.dataOK(b[:hl], b[hl:hl+n]) {
		return 0
	}
	return hl + n
}

// NextRecord returns the index in b of the first valid record that starts
// after b[0], b being at file offset off, or -1. Random bytes pass the
// length test once in 4,096 offsets, so the checksums computed stay few.
func (h Header) NextRecord(b []byte, off int64) int {
	for i := 1; i+h.RecordHeaderLen() < len(b); i++ {
		if h.RecordAt(b[i:], off+int64(i)) > 0 {
			return i
		}
	}
	return -1
}

// Read reads a log from r: its header, v (the data of its valid records,
// in order, up to the first byte that is not a valid record) and good, the
// offset of that byte: the length of the log if it is whole. The bytes
// from good on are for Tail to judge. A file that is a header cut short
// is ErrTornHeader; one that starts with no header, a *HeaderError.
func Read(r io.Reader) (h Header, v []byte, good int64, err error) {
	h, good, err = Walk(r, func(data []byte) bool {
		v = append(v, data...)
		return true
	})
	return h, v, good, err
}

// Walk is Read that hands each valid record's data to each, in order,
// instead of building v, so that its memory is bounded by one record
// (MaxRecord) and r's buffer whatever the log's length; data is reused
// after each returns. It stops early, at the start of the record, if
// each returns false.
func Walk(r io.Reader, each func(data []byte) bool) (h Header, good int64, err error) {
	br := bufio.NewReader(r) // r itself if r is a big enough bufio.Reader
	head, perr := br.Peek(keyedLen)
	if perr != nil && !errors.Is(perr, io.EOF) {
		return Header{}, 0, perr
	}
	if h, err = ParseHeader(head); err != nil {
		return Header{}, 0, err
	}
	br.Discard(h.Len)
	good = int64(h.Len)
	hl := h.RecordHeaderLen()
	var hdr [RecordHeader]byte
	var data []byte
	for {
		if _, err := io.ReadFull(br, hdr[:hl]); err != nil {
			return h, good, readErr(err)
		}
		n, ok := h.headerAt(hdr[:hl], good)
		if !ok {
			return h, good, nil
		}
		if cap(data) < n {
			data = make([]byte, n)
		}
		data = data[:n]
		if _, err := io.ReadFull(br, data); err != nil {
			return h, good, readErr(err)
		}
		if !h.dataOK(hdr[:hl], data) {
			return h, good, nil
		}
		if !each(data) {
			return h, good, nil
		}
		good += int64(hl + n)
	}
}

// readErr is nil for the end of the log, which may come anywhere.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// Decode is Read for callers that want v alone: v and good.
func Decode(r io.Reader) (v []byte, good int64, err error) {
	_, v, good, err = Read(r)
	return v, good, err
}

// TailVerdict is Tail's judgement of the bytes after a log's good part.
type TailVerdict struct {
	Cut  bool   // a torn write, never answered: cut it; else damage: refuse
	Why  string // what the bytes are, in words
	Next int64  // refusal: the offset of the next valid record, or -1
}

// Tail judges rest, the bytes of a log from off, the end of its good part
// (Read's good), to the end of the file. A crash can leave only the last
// write bad, and one write is one record, so the tail is a torn write,
// cut, only if it is:
//
//   - fewer bytes than a record header;
//   - a record whose header holds but whose data the file ends within;
//   - a record whose header holds, that ends where the file ends, and
//     one of whose data's sectors (512-byte pieces, by file offset) is all
//     zeros, which is what a write that did not reach the disk leaves
//     (etcd's write-ahead log tells a torn write the same way);
//   - zeros alone, at most one record long;
//
// and no valid record follows. Anything else is damage: a record whose
// checksum fails with bytes after it, a complete last record whose
// checksum fails with no zeroed sector, bytes that are not a record. Those
// are refused: the records they hold were answered. An empty rest is
// nothing to cut.
func (h Header) Tail(rest []byte, off int64) TailVerdict {
	if len(rest) == 0 {
		return TailVerdict{Cut: true, Next: -1}
	}
	if next := h.NextRecord(rest, off); next >= 0 {
		return TailVerdict{Why: "a bad record with valid records after it", Next: off + int64(next)}
	}
	hl := h.RecordHeaderLen()
	if len(rest) < hl {
		return TailVerdict{Cut: true, Why: "an incomplete record header", Next: -1}
	}
	n, ok := h.headerAt(rest, off)
	switch {
	case ok && len(rest) < hl+n:
		return TailVerdict{Cut: true, Why: "an incomplete last record", Next: -1}
	case ok && len(rest) == hl+n && ZeroSector(rest[hl:], off+int64(hl)):
		return TailVerdict{Cut: true, Why: "a last record with a zeroed sector", Next: -1}
	case ok && len(rest) == hl+n:
		return TailVerdict{Why: "the last record's checksum fails, and no sector of it is zeroed", Next: -1}
	case ok:
		return TailVerdict{Why: "a record's checksum fails, with more bytes after it", Next: -1}
	case allZero(rest) && len(rest) <= hl+MaxRecord:
		return TailVerdict{Cut: true, Why: "zeros", Next: -1}
	case allZero(rest):
		return TailVerdict{Why: "zeros, longer than any one record", Next: -1}
	}
	return TailVerdict{Why: "bytes that are not a record", Next: -1}
}

// ZeroSector reports whether some piece of b, cut at the sector
// boundaries of the file (b being at file offset off), is all zeros.
func ZeroSector(b []byte, off int64) bool {
	for len(b) > 0 {
		n := min(len(b), Sector-int(off%Sector))
		if allZero(b[:n]) {
			return true
		}
		b, off = b[n:], off+int64(n)
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
