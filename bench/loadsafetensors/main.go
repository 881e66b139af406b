// Command loadsafetensors measures torch.LoadSafetensors on a large file:
// wall time and the process's peak RSS (VmHWM), beside twin.py, which does
// the same with Python's safetensors.torch.load_file. run.sh makes the file
// and runs both in one go; the figures are in torch/BENCH.md.
//
//	go run ./bench/loadsafetensors -make /tmp/big.safetensors -mb 1024
//	go run ./bench/loadsafetensors /tmp/big.safetensors
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golora/golora/torch"
)

func main() {
	mk := flag.String("make", "", "write a float32 file of -mb megabytes at this path, then exit")
	mb := flag.Int64("mb", 1024, "size of the file -make writes, in MiB (split into 64 MiB tensors)")
	flag.Parse()
	if *mk != "" {
		if err := makeFile(*mk, *mb); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: loadsafetensors FILE | -make FILE [-mb N]")
		os.Exit(2)
	}
	base := status("VmRSS:")
	start := time.Now()
	ts, _, err := torch.LoadSafetensors(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	el := time.Since(start)
	var bytes int64
	for _, t := range ts {
		bytes += t.Numel() * int64(t.DType().ElemSize())
	}
	fmt.Printf("go: loaded %d tensors, %.0f MiB in %.3f s, RSS before %s, peak RSS %s\n",
		len(ts), float64(bytes)/(1<<20), el.Seconds(), base, status("VmHWM:"))
	torch.CloseMap(ts)
}

// makeFile writes mb MiB of float32 tensors of 64 MiB each, without
// holding more than one tensor at a time.
func makeFile(path string, mb int64) error {
	const per = 64
	n := (mb + per - 1) / per
	m := map[string]*torch.Tensor{}
	for i := int64(0); i < n; i++ {
		m[fmt.Sprintf("layer.%03d.weight", i)] = torch.Zeros([]int64{per << 18}).Must() // 64 MiB of float32
	}
	defer torch.CloseMap(m)
	return torch.SaveSafetensors(path, m, map[string]string{"format": "pt"})
}

// status returns a field of /proc/self/status, such as VmHWM (peak RSS).
func status(field string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
