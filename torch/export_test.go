package torch

// LiveRegions is how many checkpointed regions are alive (for tests).
func LiveRegions() int64 { return liveRegions.Load() }
