//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// want is a finding a scenario must produce.
type want struct {
	// Type is the finding type.
	Type string
	// Exe lists acceptable suffixes of the acting process's executable path
	// (any one matches); empty accepts any.
	Exe []string
	// InContainer requires the finding's container to be the scenario's.
	InContainer bool
	// Rule, when set, names the rule that must raise it (where several
	// rules give the type).
	Rule string
}

type scenario struct {
	name string
	// container: run the scenario in a fresh busybox container with the
	// attacker at /bin/attacker.
	container  bool
	privileged bool
	// hostMounts bind-mounts host paths into the container, read-only,
	// keyed by their path inside it.
	hostMounts map[string]string
	run        func(t *testing.T, e *env, c *containerRun)
	wants      []want
}

// containerRun is the scenario's container, when it has one.
type containerRun struct {
	c      *testutil.Container
	rootfs string
	socket string
}

func (c *containerRun) exec(t *testing.T, cmd ...string) string {
	t.Helper()
	ctx := exec.Command("ctr", append([]string{"--address", c.socket, "--namespace", c.c.Namespace, "task", "exec",
		"--exec-id", fmt.Sprintf("e2e-%d", time.Now().UnixNano()), c.c.ID}, cmd...)...)
	out, err := ctx.CombinedOutput()
	if err != nil {
		t.Logf("in container %v: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// execTTY runs cmd in the container on a terminal (ctr task exec -t, as
// kubectl exec -it does), with util-linux script giving ctr the terminal it
// needs on its side; input is typed into it.
func (c *containerRun) execTTY(t *testing.T, input string, cmd ...string) string {
	t.Helper()
	line := []string{"ctr", "--address", c.socket, "--namespace", c.c.Namespace, "task", "exec", "-t",
		"--exec-id", fmt.Sprintf("e2e-%d", time.Now().UnixNano()), c.c.ID}
	for _, a := range append(line, cmd...) {
		if strings.ContainsAny(a, " '\"$") {
			t.Fatalf("execTTY: quote %q yourself", a)
		}
	}
	sh := exec.Command("script", "-qec", strings.Join(append(line, cmd...), " "), "/dev/null")
	sh.Stdin = strings.NewReader(input)
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Logf("in container on a terminal %v: %v\n%s", cmd, err, out)
	}
	return string(out)
}

type result struct {
	scenario, findingType string
	seconds               float64
	ok                    bool
}

// TestMain stops the PostgreSQL server a scenario may have started and
// removes what the scenario list made.
func TestMain(m *testing.M) {
	code := m.Run()
	testutil.StopPostgres()
	for _, d := range madeDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

func TestEndToEnd(t *testing.T) {
	testutil.RequireContainerd(t)
	root := repoRoot(t)
	work, err := os.MkdirTemp("", "vigil-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	// VIGIL_E2E_KEEP=1 keeps the work directory (store, logs) for a look
	// after a failure.
	if os.Getenv("VIGIL_E2E_KEEP") == "1" {
		t.Logf("work directory kept: %s", work)
	} else {
		t.Cleanup(func() { os.RemoveAll(work) })
	}
	// World-readable, so the unprivileged user of the setuid scenario can
	// reach the files it runs.
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(work, "logs")
	_ = os.MkdirAll(logs, 0o755)
	sensorBin, backendBin, attacker := buildBinaries(t, root, work)

	socket, _ := testutil.StartContainerd(t)
	startStubResolver(t, "127.0.0.1:53")

	// The config map: the built-in rules plus a hash list naming the
	// "known malicious" test binary.
	rulesDir := filepath.Join(work, "rules")
	_ = os.MkdirAll(rulesDir, 0o755)
	// A copy of /bin/true with a unique tail: its own hash, so only this
	// file is "known malicious", not every /bin/true on the host.
	malware := filepath.Join(work, "bin", "implant")
	copyFile(t, "/bin/true", malware, 0o755)
	appendFile(t, malware, "vigil-e2e-implant-"+randomToken())
	sum := fileSHA256(t, malware)
	writeFile(t, filepath.Join(rulesDir, "10-hashes.yaml"), fmt.Sprintf(`- list: malicious_executable_sha256
  override: {items: append}
  items: [%s]
`, sum))

	apiToken, sensorToken := randomToken(), randomToken()
	grpcPort, httpPort := freePort(t), freePort(t)
	tokens := []string{"VIGIL_API_TOKEN=" + apiToken, "VIGIL_SENSOR_TOKEN=" + sensorToken}
	backend := startDaemon(t, "backend", logs, tokens, backendBin,
		"--insecure", "--grpc-listen", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--store", "sqlite://"+filepath.Join(work, "vigil.db"), "--rules-dir", rulesDir)
	api := &apiClient{base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), token: apiToken, http: &http.Client{Timeout: 10 * time.Second}}
	waitFor(t, "backend health", 30*time.Second, func() bool {
		resp, err := http.Get(api.base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK && backend.running()
	})

	sensor := startDaemon(t, "sensor", logs, tokens, sensorBin,
		"--insecure", "--backend", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--spool-dir", filepath.Join(work, "spool"), "--health-interval", "1s",
		// Module loads through raw_syscalls on kernels without module
		// support (where the scenario's attempt can only fail).
		"--collector-raw-syscalls-fallback",
		"--enrich-containerd-socket", socket)
	waitFor(t, "sensor reporting to the backend", 60*time.Second, func() bool {
		ss, err := api.sensors()
		return err == nil && len(ss) > 0 && sensor.running() && len(ss[0].GetHealth().GetLoadedProbes()) > 0
	})

	e := &env{t: t, root: root, work: work, sensor: sensorBin, backend: backendBin, attacker: attacker, ctrd: socket, api: api, dns: "127.0.0.1:53"}
	var results []result
	var attackContainers []string
	// VIGIL_E2E_ONLY=text runs only the scenarios whose name contains it
	// (or any of several texts separated by |).
	only := os.Getenv("VIGIL_E2E_ONLY")
	for _, sc := range scenarios(malware) {
		if only != "" && !slices.ContainsFunc(strings.Split(only, "|"), func(s string) bool { return strings.Contains(sc.name, s) }) {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			var cr *containerRun
			if sc.container {
				rootfs := testutil.BusyboxRootfs(t)
				copyFile(t, attacker, filepath.Join(rootfs, "bin", "attacker"), 0o755)
				c := testutil.RunContainer(t, testutil.ContainerOptions{
					Socket: socket, Rootfs: rootfs, Privileged: sc.privileged, Mounts: sc.hostMounts,
					Labels: map[string]string{"app": "vigil-e2e"},
				})
				cr = &containerRun{c: c, rootfs: rootfs, socket: socket}
				attackContainers = append(attackContainers, c.ID)
			}
			start := time.Now().Add(-time.Second)
			sc.run(t, e, cr)
			for _, w := range sc.wants {
				f, took := waitFinding(t, api, w, cr, start, 20*time.Second)
				results = append(results, result{scenario: sc.name, findingType: w.Type, seconds: took.Seconds(), ok: f != nil})
				if f == nil {
					continue
				}
				checkProcess(t, f, w)
			}
		})
	}

	printTable(t, results)

	t.Run("attack sequence on one container", func(t *testing.T) {
		if only != "" {
			t.Skip("VIGIL_E2E_ONLY runs a subset of the scenarios")
		}
		// The container scenarios each ran in their own container; the
		// sensitive-file scenario raises two tactics in one.
		fs, err := api.findings(url.Values{"type": {"AttackSequence:*"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) == 0 {
			t.Errorf("no attack-sequence finding; containers: %v", attackContainers)
			return
		}
		if fs[0].GetSeverity() < 9 || len(fs[0].GetEvidence().GetRelatedFindingIds()) < 2 {
			t.Errorf("attack sequence %s: severity %.1f, related %v", fs[0].GetId(), fs[0].GetSeverity(), fs[0].GetEvidence().GetRelatedFindingIds())
		}
	})

	t.Run("benign workloads raise nothing of Medium or higher", func(t *testing.T) {
		start := time.Now()
		benign(t, e)
		time.Sleep(3 * time.Second) // let the last batches land
		fs, err := api.findings(url.Values{"updatedAfter": {start.UTC().Format(time.RFC3339Nano)}})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, f := range fs {
			if !eventsSince(f, start) {
				// An earlier scenario's finding the backend touched again
				// (linked into a sequence) after the benign suite began.
				continue
			}
			counts[f.GetSeverityLabel()]++
			if f.GetSeverity() >= 4 {
				p := f.GetService().GetRuntimeDetails().GetProcess()
				t.Errorf("benign workload raised %s (%s, %.0f): %s (%s)", f.GetType(), f.GetEvidence().GetRule(),
					f.GetSeverity(), p.GetExecutablePath(), p.GetCommandLine())
			}
		}
		fmt.Printf("\nbenign suite findings by severity: Low=%d Medium=%d High=%d Critical=%d\n",
			counts["Low"], counts["Medium"], counts["High"], counts["Critical"])
	})

	t.Run("nothing was lost", func(t *testing.T) {
		// A health report sent after everything above, not an old one.
		after := time.Now()
		var h *vigilv1.SensorHealth
		waitFor(t, "a fresh sensor health report", 30*time.Second, func() bool {
			ss, err := api.sensors()
			if err != nil || len(ss) == 0 {
				return false
			}
			h = ss[0].GetHealth()
			return h.GetTime().AsTime().After(after)
		})
		if h.GetEventsTotal() == 0 {
			t.Errorf("the sensor reports no events: %v", h)
		}
		fmt.Printf("sensor: events=%d lost_records=%d rate_limited=%d decode_errors=%d spool_dropped=%d skipped_probes=%d\n",
			h.GetEventsTotal(), h.GetLostRecords(), h.GetRateLimited(), h.GetDecodeErrors(), h.GetSpoolDroppedEvents(), len(h.GetSkippedProbes()))
		if h.GetLostRecords() != 0 || h.GetSpoolDroppedEvents() != 0 {
			t.Errorf("the sensor lost events: %+v", h)
		}
	})
}

// waitFinding polls the API until a finding of w.Type updated after start
// (and, for container scenarios, in that container) appears.
func waitFinding(t *testing.T, api *apiClient, w want, cr *containerRun, start time.Time, limit time.Duration) (*vigilv1.Finding, time.Duration) {
	t.Helper()
	q := url.Values{"type": {w.Type}, "updatedAfter": {start.UTC().Format(time.RFC3339Nano)}}
	if w.InContainer && cr != nil {
		q.Set("containerId", cr.c.ID)
	}
	began := time.Now()
	deadline := began.Add(limit)
	var last []*vigilv1.Finding
	for time.Now().Before(deadline) {
		fs, err := api.findings(q)
		if err == nil {
			last = fs
			for _, f := range fs {
				if exeMatches(f, w.Exe) && (w.Rule == "" || f.GetEvidence().GetRule() == w.Rule) {
					return f, time.Since(began)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var seen []string
	for _, f := range last {
		seen = append(seen, f.GetService().GetRuntimeDetails().GetProcess().GetExecutablePath())
	}
	if w.InContainer && cr != nil {
		// Same type anywhere: tells a missed detection from a finding
		// attributed to the wrong container.
		q.Del("containerId")
		any, _ := api.findings(q)
		for _, f := range any {
			var cgroups []string
			for _, ev := range f.GetEvidence().GetEvents() {
				cgroups = append(cgroups, fmt.Sprintf("%d:%s (container %q)", ev.GetCgroupId(), ev.GetCgroupPath(), ev.GetContainer().GetId()))
			}
			seen = append(seen, fmt.Sprintf("%s in container %q, evidence cgroups %v", f.GetService().GetRuntimeDetails().GetProcess().GetExecutablePath(),
				f.GetResource().GetContainerDetails().GetId(), cgroups))
		}
	}
	all, _ := api.findings(url.Values{"updatedAfter": {start.UTC().Format(time.RFC3339Nano)}})
	var types []string
	for _, f := range all {
		types = append(types, f.GetType()+" ("+f.GetEvidence().GetRule()+")")
	}
	t.Errorf("no %s finding%s within %s (exe one of %v; same-type findings had exe %v; all findings since start: %v)", w.Type, ruleNote(w.Rule), limit, w.Exe, seen, types)
	return nil, limit
}

// eventsSince says whether any of the finding's evidence happened at or
// after t.
func eventsSince(f *vigilv1.Finding, t time.Time) bool {
	for _, ev := range f.GetEvidence().GetEvents() {
		if !ev.GetTime().AsTime().Before(t) {
			return true
		}
	}
	return false
}

func ruleNote(rule string) string {
	if rule == "" {
		return ""
	}
	return " from rule " + strconv.Quote(rule)
}

func exeMatches(f *vigilv1.Finding, suffixes []string) bool {
	if len(suffixes) == 0 {
		return true
	}
	exe := f.GetService().GetRuntimeDetails().GetProcess().GetExecutablePath()
	for _, s := range suffixes {
		if strings.HasSuffix(exe, s) {
			return true
		}
	}
	return false
}

// checkProcess asserts the finding names its process and that process's
// lineage, as an investigator needs.
func checkProcess(t *testing.T, f *vigilv1.Finding, w want) {
	t.Helper()
	p := f.GetService().GetRuntimeDetails().GetProcess()
	if p.GetPid() == 0 || p.GetUuid() == "" || p.GetExecutablePath() == "" {
		t.Errorf("%s: process details incomplete: %v", w.Type, p)
	}
	if len(p.GetLineage()) == 0 || p.GetLineage()[0].GetExecutablePath() == "" {
		t.Errorf("%s: process %s has no lineage", w.Type, p.GetExecutablePath())
	}
	if w.InContainer {
		cd := f.GetResource().GetContainerDetails()
		if cd.GetId() == "" || cd.GetContainerRuntime() == "" {
			t.Errorf("%s: container context missing: %v", w.Type, f.GetResource())
		}
	}
}

func printTable(t *testing.T, results []result) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n| scenario | finding type | seconds to the API |\n| --- | --- | --- |\n")
	var times []float64
	for _, r := range results {
		s := fmt.Sprintf("%.2f", r.seconds)
		if !r.ok {
			s = "not detected"
		} else {
			times = append(times, r.seconds)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.scenario, r.findingType, s)
	}
	sort.Float64s(times)
	if len(times) > 0 {
		p99 := times[(len(times)*99+99)/100-1]
		fmt.Fprintf(&b, "\ndetected %d of %d; p50 %.2f s, p99 %.2f s, max %.2f s\n", len(times), len(results),
			times[len(times)/2], p99, times[len(times)-1])
	}
	fmt.Print(b.String())
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", limit, what)
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serveHTTP serves body on loopback for the download scenarios.
func serveHTTP(t *testing.T, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
