package netprobe

import (
	"testing"

	"golang.org/x/net/bpf"
)

// kernelFilter runs the reply socket's BPF program on a packet (network
// header first, as the kernel gives it on a cooked packet socket).
func kernelFilter(t *testing.T, pkt []byte) bool {
	t.Helper()
	raw, err := replyFilter()
	if err != nil {
		t.Fatal(err)
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}
