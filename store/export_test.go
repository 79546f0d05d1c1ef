package store

// RepairBytes exposes repairBytes to the tests.
func RepairBytes(orig []byte) ([]byte, *RepairReport) { return repairBytes(orig) }

// SetRepairHook makes RepairLogContext call f at each stage where it looks
// at its context, until the returned func is called.
func SetRepairHook(f func(stage string)) (restore func()) {
	repairHook = f
	return func() { repairHook = nil }
}
