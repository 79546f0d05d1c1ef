package demo

import (
	"context"
	"errors"
	"io"
)

// Lessons whose pairs have not landed yet.
var (
	Chunks      = Lesson{Name: "chunks", Title: "chunks", Section: "2", Run: notYet}
	Blocking    = Lesson{Name: "blocking", Title: "blocking", Section: "2", Run: notYet}
	Nonblocking = Lesson{Name: "nonblocking", Title: "nonblocking", Section: "6.1", Run: notYet}
	Status      = Lesson{Name: "status", Title: "status", Section: "5.2", Run: notYet}
	Shared      = Lesson{Name: "shared", Title: "shared", Section: "6.1", Run: notYet}
)

func notYet(context.Context, io.Writer, Options) (Observations, error) {
	return nil, errors.New("not yet")
}
