package main

import (
	"reflect"
	"time"
	"unicode"

	"github.com/tcplab/tcplab/internal/demo"
	"github.com/tcplab/tcplab/internal/safetext"
)

// demoReport is tcplab demo --json's one object (docs/json.md).
type demoReport struct {
	OK      bool         `json:"ok"`
	Error   string       `json:"error,omitempty"`
	Seconds float64      `json:"seconds"`
	OutDir  string       `json:"out_dir,omitempty"`
	Lessons []demoLesson `json:"lessons"`
}

// demoLesson is one lesson's outcome: its summary line and every figure
// it measured (its Observations, field by field).
type demoLesson struct {
	Name         string  `json:"name"`
	Title        string  `json:"title"`
	Section      string  `json:"section"`
	OK           bool    `json:"ok"`
	Error        string  `json:"error,omitempty"`
	Seconds      float64 `json:"seconds"`
	Summary      string  `json:"summary,omitempty"`
	Observations any     `json:"observations,omitempty"`
}

func (r *demoReport) add(l demo.Lesson, obs demo.Observations, err error, took time.Duration) {
	dl := demoLesson{Name: l.Name, Title: l.Title, Section: l.Section, OK: err == nil, Seconds: took.Seconds()}
	if err != nil {
		dl.Error = safetext.OneLine(err.Error())
	} else if obs != nil {
		dl.Summary = obs.Summary()
		dl.Observations = plainValue(reflect.ValueOf(obs))
	}
	r.Lessons = append(r.Lessons, dl)
}

// chunkSummary is how stream.ChunkStats (whose fields are its own) shows
// in JSON.
type chunkSummary interface {
	Total() int64
	Count() int64
	Min() int
	Median() int
	Max() int
}

var (
	errorType    = reflect.TypeFor[error]()
	durationType = reflect.TypeFor[time.Duration]()
	chunksType   = reflect.TypeFor[chunkSummary]()
)

// plainValue turns a lesson's observations into values encoding/json
// writes as a script wants them, whatever lesson they come from (new
// lessons included): struct fields by snake_case name, errors as their
// text (null: no error), durations in seconds (the key ends in
// "_seconds"), chunk statistics as bytes, reads, min, median and max.
func plainValue(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type().Implements(chunksType) || (v.CanAddr() && v.Addr().Type().Implements(chunksType)) {
		var c chunkSummary
		if v.Type().Implements(chunksType) {
			c = v.Interface().(chunkSummary)
		} else {
			c = v.Addr().Interface().(chunkSummary)
		}
		if v.Kind() != reflect.Pointer || !v.IsNil() {
			return map[string]any{"bytes": c.Total(), "reads": c.Count(), "min": c.Min(), "median": c.Median(), "max": c.Max()}
		}
	}
	if v.Type().Implements(errorType) && v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		return v.Interface().(error).Error()
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).Seconds()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plainValue(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			key := snake(f.Name)
			if f.Type == durationType {
				key += "_seconds"
			}
			m[key] = plainValue(v.Field(i))
		}
		return m
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return string(v.Bytes())
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plainValue(v.Index(i))
		}
		return out
	case reflect.Map:
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			m[fmtKey(k)] = plainValue(v.MapIndex(k))
		}
		return m
	}
	return v.Interface()
}

func fmtKey(k reflect.Value) string {
	if k.Kind() == reflect.String {
		return k.String()
	}
	return reflect.ValueOf(k.Interface()).String()
}

// snake writes a Go field name in snake_case: UDPReads is udp_reads,
// MaxDatagram max_datagram, GoBytesPerConn go_bytes_per_conn.
func snake(name string) string {
	r := []rune(name)
	var out []rune
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]))) {
			out = append(out, '_')
		}
		out = append(out, unicode.ToLower(c))
	}
	return string(out)
}
