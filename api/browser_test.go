package api_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// xssPayload is the command line of a hostile process. The page must show it
// as text; if it were parsed as markup, the broken image would run alert().
const xssPayload = `<img src=x onerror=alert(1)>`

// chromiumPath finds Debian's chromium, installing it when this test runs
// as root and it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "chromium is not installed and installing it needs root")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "chromium"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %v: %v\n%s", args, err, out)
		}
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium installed but not found: %v", err)
	}
	return p
}

// browser starts headless chromium and watches the page for dialogs and
// uncaught script errors.
type browser struct {
	ctx        context.Context
	mu         sync.Mutex
	dialogs    []string
	exceptions []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{ctx: ctx}
	dismiss := make(chan struct{}, 16)
	if err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			select {
			case dismiss <- struct{}{}:
			default:
			}
		case *runtime.EventExceptionThrown:
			b.exceptions = append(b.exceptions, ev.ExceptionDetails.Text+" "+exceptionDescription(ev))
		}
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		// A dialog blocks the page; close it so the test can report it
		// rather than hang.
		for range dismiss {
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return b
}

func exceptionDescription(ev *runtime.EventExceptionThrown) string {
	if ev.ExceptionDetails != nil && ev.ExceptionDetails.Exception != nil {
		return ev.ExceptionDetails.Exception.Description
	}
	return ""
}

// do runs steps with a deadline.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is true.
func (b *browser) waitFor(t *testing.T, what, predicate string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 1500)`))
		t.Fatalf("waiting for %s: %v\npage text: %s", what, err, body)
	}
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(os.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func (b *browser) problems() (dialogs, exceptions []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...), append([]string(nil), b.exceptions...)
}

// TestBrowser drives the real page in headless Chromium against the real
// server and a real SQLite store.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test in -short mode")
	}
	fx := newFixture(t)
	ids := seed(fx)
	hostile := fx.raise(spec{typ: "Execution:Runtime/SuspiciousCommand", rule: "Suspicious command", severity: 6, host: "web-1", inst: "i-0abc",
		container: "bad0bad0", image: "nginx:1.27", ns: "shop", pod: "cart-7d9", extraEvents: 2,
		args: []string{"sh", "-c", "echo " + xssPayload}})[0].GetId()
	if err := fx.store.RecordHealth(t.Context(),
		&vigilv1.Hello{SensorId: "sensor-a", Version: "v0.1.0", Host: &vigilv1.Host{Hostname: "web-1", Kernel: "6.1.0-18-amd64"}},
		&vigilv1.SensorHealth{SensorId: "sensor-a", Kernel: "6.1.0-18-amd64", Mode: "ebpf", EventsTotal: 9876,
			LoadedProbes:  []string{"sched_process_exec", "sched_process_fork", "sys_enter_openat"},
			SkippedProbes: []*vigilv1.SkippedProbe{{Name: "sys_enter_bpf", Reason: "disabled by policy"}}}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	rows := `document.querySelectorAll('#findings-table tbody tr').length`

	t.Run("the page takes the token from the URL and lists active findings", func(t *testing.T) {
		b.do(t, "open the page", chromedp.Navigate(fx.url+"/#token="+apiToken))
		b.waitFor(t, "four active findings", rows+` === 4`)
		if h := eval[string](t, b, `location.hash`); strings.Contains(h, apiToken) {
			t.Fatalf("the token stays in the address bar: %q", h)
		}
		if got := eval[string](t, b, `sessionStorage.getItem('vigil.apiToken')`); got != apiToken {
			t.Fatalf("session storage holds %q", got)
		}
		classes := eval[[]string](t, b, `[...document.querySelectorAll('#findings-table .sev')].map(e => e.className)`)
		if !strings.Contains(strings.Join(classes, " "), "sev-high") || !strings.Contains(strings.Join(classes, " "), "sev-low") {
			t.Fatalf("severity badges %v lack their colour classes", classes)
		}
		b.screenshot(t, "vigil-findings.png")
	})

	t.Run("filtering by host and severity narrows the list", func(t *testing.T) {
		b.do(t, "filter by host",
			chromedp.SendKeys(chromedp.CSS(`input[name=hostname]`), "web-1"),
			chromedp.Click(chromedp.ID("apply-filters")))
		b.waitFor(t, "the findings on web-1", rows+` === 3 && location.hash.includes('hostname=web-1')`)
		b.do(t, "filter by severity",
			chromedp.SetValue(chromedp.CSS(`select[name=severityMin]`), "7"),
			chromedp.Click(chromedp.ID("apply-filters")))
		b.waitFor(t, "the high findings on web-1", rows+` === 1 && location.hash.includes('severityMin=7')`)
		got := eval[string](t, b, `document.querySelector('#findings-table tbody tr').dataset.id`)
		if got != ids["A"] {
			t.Fatalf("the remaining finding is %s, want A (%s)", got, ids["A"])
		}
	})

	t.Run("opening a finding shows its lineage as a tree", func(t *testing.T) {
		b.do(t, "open finding A", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-id="%s"] a.finding-link`, ids["A"]))))
		b.waitFor(t, "the lineage tree", `document.querySelector('#lineage') !== null`)
		// Each process is nested one level under its parent, oldest first.
		chain := eval[[]string](t, b, `(() => {
			const out = [];
			let ul = document.querySelector('#lineage');
			while (ul) {
				const li = ul.querySelector(':scope > li');
				if (!li) break;
				out.push(li.querySelector(':scope > .node > .name').textContent + (li.classList.contains('current') ? '*' : ''));
				ul = li.querySelector(':scope > ul');
			}
			return out;
		})()`)
		if strings.Join(chain, " > ") != "containerd-shim > nginx > sh*" {
			t.Fatalf("lineage tree %v, want containerd-shim > nginx > sh (current)", chain)
		}
		text := eval[string](t, b, `document.querySelector('#finding-detail').innerText`)
		for _, want := range []string{"cart-7d9", "shop", "nginx:1.27", "c0ffee01", "Reverse shell", "execve"} {
			if !strings.Contains(text, want) {
				t.Fatalf("the detail page lacks %q", want)
			}
		}
		b.screenshot(t, "vigil-detail.png")
	})

	t.Run("the archive button archives the finding", func(t *testing.T) {
		b.do(t, "archive", chromedp.Click(chromedp.ID("archive-button")))
		b.waitFor(t, "the unarchive button", `document.querySelector('#archive-button') && document.querySelector('#archive-button').textContent === 'Unarchive'`)
		f, err := fx.store.GetFinding(t.Context(), ids["A"])
		if err != nil || !f.GetService().GetArchived() {
			t.Fatalf("finding A archived=%v err=%v", f.GetService().GetArchived(), err)
		}
	})

	t.Run("the suppress button creates a suppression", func(t *testing.T) {
		b.do(t, "suppress", chromedp.Click(chromedp.ID("suppress-button")),
			chromedp.Click(chromedp.CSS(`#suppress-form button[type=submit]`)))
		b.waitFor(t, "the confirmation", `document.querySelector('#suppress-result') !== null`)
		sups, err := fx.store.ListSuppressions(t.Context())
		if err != nil || len(sups) != 1 || sups[0].GetFilter().GetType() != "Execution:Runtime/ReverseShell" || sups[0].GetFilter().GetImage() != "nginx:1.27" {
			t.Fatalf("suppressions %v, err %v", sups, err)
		}
	})

	t.Run("a hostile command line renders as text and runs nothing", func(t *testing.T) {
		b.do(t, "open the hostile finding", chromedp.Navigate(fx.url+"/#/finding/"+hostile))
		b.waitFor(t, "the detail page", `document.querySelector('#evidence-events') !== null`)
		// Give a parsed <img src=x> time to fail to load and fire onerror.
		time.Sleep(500 * time.Millisecond)
		count := eval[int](t, b, fmt.Sprintf(`[...document.querySelectorAll('.cmdline, pre, td')].filter(e => e.textContent.includes(%q)).length`, xssPayload))
		if count == 0 {
			t.Fatalf("the literal %q is not in the page", xssPayload)
		}
		if n := eval[int](t, b, `document.querySelectorAll('img').length`); n != 0 {
			t.Fatalf("the page has %d <img> elements; data became markup", n)
		}
		dialogs, _ := b.problems()
		if len(dialogs) != 0 {
			t.Fatalf("dialogs opened: %v", dialogs)
		}
		b.screenshot(t, "vigil-hostile.png")
	})

	t.Run("the coverage page shows each sensor", func(t *testing.T) {
		b.do(t, "open coverage", chromedp.Navigate(fx.url+"/#/coverage"))
		b.waitFor(t, "the sensor table", `document.querySelector('#sensors-table tbody tr') !== null`)
		text := eval[string](t, b, `document.querySelector('#sensors-table').innerText`)
		for _, want := range []string{"web-1", "sensor-a", "6.1.0-18-amd64", "3 loaded", "1 skipped", "healthy"} {
			if !strings.Contains(text, want) {
				t.Fatalf("coverage lacks %q:\n%s", want, text)
			}
		}
		b.screenshot(t, "vigil-coverage.png")
	})

	t.Run("the rules page shows the rule set and the rejected file", func(t *testing.T) {
		b.do(t, "open rules", chromedp.Navigate(fx.url+"/#/rules"))
		b.waitFor(t, "the rules table", `document.body.innerText.includes('Reverse shell') && document.body.innerText.includes('broken.yaml')`)
	})

	t.Run("the suppressions page lists and deletes a suppression", func(t *testing.T) {
		b.do(t, "open suppressions", chromedp.Navigate(fx.url+"/#/suppressions"))
		b.waitFor(t, "the suppression", `document.querySelectorAll('#suppressions-table tbody tr').length === 1`)
		// Delete asks for a second click instead of a dialog.
		b.do(t, "delete", chromedp.Click(chromedp.CSS(`#suppressions-table button.danger`)))
		b.do(t, "confirm", chromedp.Click(chromedp.CSS(`#suppressions-table button.danger`)))
		b.waitFor(t, "the empty list", `document.querySelector('#suppressions-table') === null && document.body.innerText.includes('No suppressions')`)
		if sups, err := fx.store.ListSuppressions(t.Context()); err != nil || len(sups) != 0 {
			t.Fatalf("suppressions left %v, err %v", sups, err)
		}
	})

	t.Run("without a token the page asks for one, refuses a sensor token and takes the API token", func(t *testing.T) {
		b.do(t, "forget the token", chromedp.Navigate(fx.url+"/#/findings"), chromedp.Click(chromedp.ID("forget-token")))
		b.waitFor(t, "the token form", `document.querySelector('#token-input') !== null`)
		b.do(t, "enter the sensor token", chromedp.SendKeys(chromedp.ID("token-input"), sensorToken), chromedp.Click(chromedp.CSS(`.token-box button[type=submit]`)))
		b.waitFor(t, "the refusal", `document.querySelector('#token-input') !== null && document.body.innerText.includes('sensor token')`)
		b.do(t, "enter the API token", chromedp.SendKeys(chromedp.ID("token-input"), apiToken), chromedp.Click(chromedp.CSS(`.token-box button[type=submit]`)))
		b.waitFor(t, "the findings", `document.querySelectorAll('#findings-table tbody tr').length > 0`)
	})

	t.Run("the first page of findings shows new findings as they arrive", func(t *testing.T) {
		b.do(t, "open the list with a one-second refresh", chromedp.Navigate(fx.url+"/?refresh=1#/findings?archived=any"))
		b.waitFor(t, "the list", rows+` > 0`)
		before := eval[int](t, b, rows)
		fresh := fx.raise(spec{typ: "Execution:Runtime/NewBinaryExecuted", rule: "New binary", severity: 7, host: "web-9", inst: "i-0999"})[0].GetId()
		b.waitFor(t, "the new finding", fmt.Sprintf(`%s === %d && document.querySelector('tr[data-id="%s"]') !== null`, rows, before+1, fresh))
	})

	t.Run("an attack sequence links the findings it correlates", func(t *testing.T) {
		changed := fx.raise(spec{typ: "PrivilegeEscalation:Runtime/ContainerMountsHostDirectory", rule: "Host mount", severity: 7, host: "web-1", inst: "i-0abc",
			container: "c0ffee01", image: "nginx:1.27", ns: "shop", pod: "cart-7d9", tactics: []string{"TA0004"}})
		seq := ""
		for _, f := range changed {
			if strings.HasPrefix(f.GetType(), "AttackSequence:") {
				seq = f.GetId()
			}
		}
		if seq == "" {
			t.Fatalf("no attack sequence among %d changed findings", len(changed))
		}
		b.do(t, "open the sequence", chromedp.Navigate(fx.url+"/#/finding/"+seq))
		b.waitFor(t, "links to the correlated findings", `document.querySelectorAll('a.related').length >= 2`)
		b.do(t, "follow one", chromedp.Click(chromedp.CSS(`a.related`)))
		b.waitFor(t, "the correlated finding", `location.hash !== '#/finding/`+seq+`' && document.querySelector('#finding-title') !== null`)
	})

	t.Run("no script error and no dialog happened", func(t *testing.T) {
		dialogs, exceptions := b.problems()
		if len(dialogs) != 0 || len(exceptions) != 0 {
			t.Fatalf("dialogs %v, script errors %v", dialogs, exceptions)
		}
	})
}
