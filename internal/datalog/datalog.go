// Package datalog is the format of strsvr's data file (store.File): a
// header, then records that each carry some bytes appended to v and their
// checksum. It reads and writes bytes only; opening, locking, syncing and
// repairing files is store's.
//
// The header is KeyedMagic, the checksum key in 8 lowercase hexadecimal
// digits, a space, the CRC-32C of those 8 digits, also in 8, and a
// newline. Logs made before keys begin with Magic alone, and their key is
// 0. A record is:
//
//	offset 0  uint32 big-endian  n, the length of the data, 1..MaxRecord
//	offset 4  uint32 big-endian  CRC-32C (Castagnoli) of the data, computed
//	                             from the key (crc32.Update(key, ...))
//	offset 8  n bytes            the data: bytes appended to v, in order
//
// Why a key: clients choose the bytes of records, and could otherwise type
// a letter that reads as a valid record. Inside a record torn by a crash it
// would stand after the tear as a "valid record", and turn a torn tail,
// which is cut, into damage, which is refused. Clients never see the key,
// so their look-alikes fail the check (but for one chance in 2^32). The
// header's own checksum keeps a damaged key from passing for another key,
// under which every record would fail and the whole log look torn.
package datalog

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
)

// Magic opens every log of the first format, so that a data file pointed
// at some other file is refused instead of being read as v. Logs of that
// format are still read and appended to; new logs are keyed.
const Magic = "tcplab-strsvr-log v1\n"

// KeyedMagic opens a log whose record checksums are keyed.
const KeyedMagic = "tcplab-strsvr-log v2 "

// keyedHeader is the length of a keyed log's header.
const keyedHeader = len(KeyedMagic) + 8 + 1 + 8 + 1

// MaxRecord bounds one record. Longer appends are cut into several
// records; a length above it on reading marks a damaged tail.
const MaxRecord = 1 << 20

// RecordHeader is the length of a record's header: the length and the
// CRC-32C of its data.
const RecordHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HeaderLen returns the length of the header of the log that starts with
// b, before the first record, or 0 if b holds no whole header.
func HeaderLen(b []byte) int {
	if _, n, ok := ParseHeader(b); ok {
		return n
	}
	return 0
}

// ParseHeader reads the header at the start of b: the checksum key (0 for
// an unkeyed log), the header's length, and whether b holds a whole one.
func ParseHeader(b []byte) (key uint32, n int, ok bool) {
	if len(b) >= len(Magic) && string(b[:len(Magic)]) == Magic {
		return 0, len(Magic), true
	}
	if len(b) < keyedHeader || string(b[:keyedHeader]) != string(keyedHeaderOf(b[len(KeyedMagic):len(KeyedMagic)+8])) {
		return 0, 0, false
	}
	k, err := strconv.ParseUint(string(b[len(KeyedMagic):len(KeyedMagic)+8]), 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return uint32(k), keyedHeader, true
}

// keyedHeaderOf returns the header for the 8 hexadecimal digits of a key.
func keyedHeaderOf(key []byte) []byte {
	return fmt.Appendf(nil, "%s%s %08x\n", KeyedMagic, key, crc32.Checksum(key, castagnoli))
}

// TornHeader reports whether b is the start of a header cut short.
func TornHeader(b []byte) bool {
	if len(b) < len(Magic) && string(b) == Magic[:len(b)] {
		return true
	}
	if len(b) >= keyedHeader {
		return false
	}
	if len(b) <= len(KeyedMagic) {
		return string(b) == KeyedMagic[:len(b)]
	}
	if string(b[:len(KeyedMagic)]) != KeyedMagic {
		return false
	}
	for i, c := range b[len(KeyedMagic):] {
		if i == 8 && c != ' ' || i != 8 && !strings.ContainsRune("0123456789abcdef", rune(c)) {
			return false
		}
	}
	return true
}

// NewHeader returns the header of a new keyed log, with a random key.
func NewHeader() ([]byte, uint32) {
	var k [4]byte
	rand.Read(k[:])
	key := binary.BigEndian.Uint32(k[:]) | 1 // never 0, the unkeyed key
	return keyedHeaderOf(fmt.Appendf(nil, "%08x", key)), key
}

// recordSum is the checksum of a record's data under key.
func recordSum(key uint32, data []byte) uint32 {
	return crc32.Update(key, castagnoli, data)
}

// AppendRecords encodes p as records, checksummed under key, onto dst.
func AppendRecords(dst []byte, key uint32, p []byte) []byte {
	for len(p) > 0 {
		n := min(len(p), MaxRecord)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
		dst = binary.BigEndian.AppendUint32(dst, recordSum(key, p[:n]))
		dst = append(dst, p[:n]...)
		p = p[n:]
	}
	return dst
}

// Decode reads a log and returns v and the length of the good part of the
// log (header and whole, valid records). A damaged or short tail is not an
// error: decoding stops before it. A log that does not start with a header
// is, unless it is a header cut short (a log torn as it was created: v is
// empty and good 0).
func Decode(r io.Reader) (v []byte, good int64, err error) {
	v, good, _, err = DecodeKeyed(r)
	return v, good, err
}

// DecodeKeyed is Decode, and returns the log's checksum key too.
func DecodeKeyed(r io.Reader) (v []byte, good int64, key uint32, err error) {
	br := bufio.NewReader(r) // r itself if r is a big enough bufio.Reader
	head, _ := br.Peek(keyedHeader)
	key, hn, ok := ParseHeader(head)
	if !ok {
		if TornHeader(head) {
			return nil, 0, 0, nil // torn while being created: start afresh
		}
		if len(head) == keyedHeader && string(head[:len(KeyedMagic)]) == KeyedMagic {
			return nil, 0, 0, errors.New("damaged header: the checksum key on its first line does not match the checksum beside it, so no record can be checked")
		}
		return nil, 0, 0, errors.New("not a strsvr data file (bad magic)")
	}
	br.Discard(hn)
	good = int64(hn)
	var hdr [RecordHeader]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return v, good, key, nil
		}
		size := binary.BigEndian.Uint32(hdr[0:4])
		sum := binary.BigEndian.Uint32(hdr[4:8])
		if size == 0 || size > MaxRecord {
			return v, good, key, nil
		}
		start := len(v)
		v = append(v, make([]byte, size)...)
		if _, err := io.ReadFull(br, v[start:]); err != nil || recordSum(key, v[start:]) != sum {
			return v[:start], good, key, nil
		}
		good += RecordHeader + int64(size)
	}
}

// RecordAt reports the length of the valid record at b[0:], under the
// checksum key, or 0.
func RecordAt(b []byte, key uint32) int {
	if len(b) < RecordHeader {
		return 0
	}
	size := binary.BigEndian.Uint32(b[0:4])
	if size == 0 || size > MaxRecord || int64(size) > int64(len(b)-RecordHeader) {
		return 0
	}
	if recordSum(key, b[RecordHeader:RecordHeader+int(size)]) != binary.BigEndian.Uint32(b[4:8]) {
		return 0
	}
	return RecordHeader + int(size)
}

// NextRecord returns the offset in b of the first valid record that starts
// after b[0], or -1. Random bytes pass the length test once in 4,096
// offsets, so the checksums computed stay few.
func NextRecord(b []byte, key uint32) int {
	for i := 1; i+RecordHeader < len(b); i++ {
		if RecordAt(b[i:], key) > 0 {
			return i
		}
	}
	return -1
}
