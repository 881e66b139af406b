package torch

// LiveRegions is how many checkpointed regions are alive (for tests).
func LiveRegions() int64 { return liveRegions.Load() }

// TerminateHandlerInstalled and EscapeCPPException expose libcgotorch's
// terminate handler to the tests (terminate.go).
func TerminateHandlerInstalled() bool { return terminateHandlerInstalled() }
func EscapeCPPException(what string)  { escapeCPPException(what) }
