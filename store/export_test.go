package store

// RepairBytes exposes repairBytes to the tests.
func RepairBytes(orig []byte) ([]byte, *RepairReport) { return repairBytes(orig) }
