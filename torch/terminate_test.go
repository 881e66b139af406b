package torch_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/golora/golora/torch"
)

// The whole test suite runs with libcgotorch's terminate handler installed:
// had any C++ exception escaped an entry point in any test, that test's
// process would have aborted naming golora (see the child below).
func TestTerminateHandlerInstalled(t *testing.T) {
	if !torch.TerminateHandlerInstalled() {
		t.Fatal("libcgotorch's terminate handler is not the process's std::terminate handler")
	}
}

// A C++ exception that escapes (simulated in a child process) aborts the
// process loudly: abort (SIGABRT), with golora's message, the exception's type and
// its text on stderr. It never unwinds into Go or exits quietly.
func TestTerminateHandlerFailsLoudly(t *testing.T) {
	if os.Getenv("GOLORA_TEST_ESCAPE_CHILD") == "1" {
		torch.EscapeCPPException("escaped on purpose")
		os.Exit(0) // not reached: the handler aborts
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTerminateHandlerFailsLoudly$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GOLORA_TEST_ESCAPE_CHILD=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: want it killed by SIGABRT, got err %v; stderr:\n%s", err, stderr.String())
	}
	// Go's runtime turns the abort into "SIGABRT: abort", a traceback of
	// the cgo call and exit status 2; without it, death by SIGABRT.
	ws, _ := ee.Sys().(syscall.WaitStatus)
	byGo := ws.Exited() && ws.ExitStatus() == 2 && strings.Contains(stderr.String(), "SIGABRT: abort")
	if !byGo && !(ws.Signaled() && ws.Signal() == syscall.SIGABRT) {
		t.Fatalf("child: want an abort, got %v; stderr:\n%s", ee, stderr.String())
	}
	for _, want := range []string{
		"golora: fatal: a C++ exception escaped libcgotorch",
		"exception type: std::runtime_error",
		"exception message: escaped on purpose",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("child's stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
