package torch

import (
	"strings"
	"testing"
)

func TestABIVersionMatches(t *testing.T) {
	if err := CheckABI(); err != nil {
		t.Fatalf("the libcgotorch.so under test is stale: %v", err)
	}
}

func TestStaleABIErrorTellsToReinstall(t *testing.T) {
	err := abiError(ABIVersion + 1)
	if err == nil {
		t.Fatal("a different ABI version was accepted")
	}
	for _, want := range []string{"ABI version", "stale", "scripts/install_libtorch.sh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if abiError(ABIVersion) != nil {
		t.Error("the matching version was refused")
	}
}
