// Package cli is the command-line client of Vigil's REST API: `backend
// findings list|get|archive|unarchive` and `backend sensors`. It prints
// tables for people and, with -o json, the API's JSON for scripts.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// DefaultServer is the API address used without --server or VIGIL_SERVER.
const DefaultServer = "http://127.0.0.1:8080"

const usage = `usage:
  findings list [filters] [-o table|json]   list findings (active ones unless --archived)
  findings get ID [-o table|json]           show one finding with lineage and evidence
  findings archive ID...                    archive findings
  findings unarchive ID...                  unarchive findings
  sensors [-o table|json]                   show sensor coverage

common flags:
  --server URL     API address (default $VIGIL_SERVER or ` + DefaultServer + `)
  --token TOKEN    API token (default $VIGIL_API_TOKEN)
  -o FORMAT        table (default) or json
`

// ErrUsage is returned (wrapped) when the command line is wrong.
var ErrUsage = errors.New("usage")

// Run runs one command. args start with the command ("findings" or
// "sensors"); stdout gets the result, stderr the usage text on mistakes.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", ErrUsage)
	}
	c := &command{stdout: stdout, stderr: stderr}
	switch args[0] {
	case "findings":
		if len(args) < 2 {
			fmt.Fprint(stderr, usage)
			return fmt.Errorf("%w: findings needs list, get, archive or unarchive", ErrUsage)
		}
		switch args[1] {
		case "list":
			return c.list(ctx, args[2:])
		case "get":
			return c.get(ctx, args[2:])
		case "archive":
			return c.archive(ctx, args[2:], true)
		case "unarchive":
			return c.archive(ctx, args[2:], false)
		}
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown findings command %q", ErrUsage, args[1])
	case "sensors":
		return c.sensors(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}

type command struct {
	stdout, stderr io.Writer
	server, token  string
	output         string
	timeout        time.Duration
}

// flags returns a flag set with the flags every command takes.
func (c *command) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	server := os.Getenv("VIGIL_SERVER")
	if server == "" {
		server = DefaultServer
	}
	fs.StringVar(&c.server, "server", server, "API address")
	fs.StringVar(&c.token, "token", os.Getenv("VIGIL_API_TOKEN"), "API token (default $VIGIL_API_TOKEN)")
	fs.StringVar(&c.output, "o", "table", "output: table or json")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "request timeout")
	return fs
}

// parse parses flags wherever they appear among the arguments (`get ID -o
// json` as well as `get -o json ID`) and returns the positional ones.
func (c *command) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if c.output != "table" && c.output != "json" {
		return nil, fmt.Errorf("%w: -o must be table or json, not %q", ErrUsage, c.output)
	}
	if c.token == "" {
		return nil, fmt.Errorf("%w: no API token: set VIGIL_API_TOKEN or pass --token", ErrUsage)
	}
	return pos, nil
}

// apiError is the API's error body.
type apiError struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter"`
}

// call does one request and returns the body of a 2xx response.
func (c *command) call(ctx context.Context, method, path string, query url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := strings.TrimRight(c.server, "/") + "/api/v1" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e apiError
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			if e.Parameter != "" {
				return nil, fmt.Errorf("%s %s: %s (parameter %s)", method, path, e.Error, e.Parameter)
			}
			return nil, fmt.Errorf("%s %s: %s", method, path, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return body, nil
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// decodeList decodes {"<key>": [...], "nextToken": "..."} into messages.
func decodeList[M proto.Message](body []byte, key string, newM func() M) ([]M, string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, "", fmt.Errorf("decode response: %w", err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw[key], &items); err != nil {
		return nil, "", fmt.Errorf("decode %s: %w", key, err)
	}
	var next string
	if t, ok := raw["nextToken"]; ok {
		if err := json.Unmarshal(t, &next); err != nil {
			return nil, "", fmt.Errorf("decode nextToken: %w", err)
		}
	}
	out := make([]M, 0, len(items))
	for _, it := range items {
		m := newM()
		if err := unmarshal.Unmarshal(it, m); err != nil {
			return nil, "", fmt.Errorf("decode %s: %w", key, err)
		}
		out = append(out, m)
	}
	return out, next, nil
}

// printJSON re-indents the API's JSON for scripts and people who pipe it to jq.
func (c *command) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func (c *command) list(ctx context.Context, args []string) error {
	fs := c.flags("findings list")
	q := url.Values{}
	filters := []struct{ flag, param, help string }{
		{"type", "type", "finding type; a trailing * matches a prefix"},
		{"severity-min", "severityMin", "lowest severity (0-10)"},
		{"severity-max", "severityMax", "highest severity (0-10)"},
		{"cluster", "cluster", "ECS cluster"},
		{"task-arn", "taskArn", "ECS task ARN"},
		{"namespace", "namespace", "Kubernetes namespace"},
		{"pod", "pod", "Kubernetes pod"},
		{"image", "image", "container image"},
		{"container-id", "containerId", "container id"},
		{"instance-id", "instanceId", "EC2 instance id"},
		{"hostname", "hostname", "host name"},
		{"rule", "rule", "rule name"},
		{"sort", "sortBy", "lastSeen or severity"},
		{"order", "order", "asc or desc"},
		{"next-token", "nextToken", "continue from a previous page"},
	}
	vals := make([]*string, len(filters))
	for i, f := range filters {
		vals[i] = fs.String(f.flag, "", f.help)
	}
	archived := fs.String("archived", "false", "true, false or any")
	since := fs.String("since", "", "updated after: a duration back from now (24h) or an RFC 3339 time")
	until := fs.String("until", "", "updated before: an RFC 3339 time")
	limit := fs.Int("limit", 50, "findings per page (1-1000)")
	all := fs.Bool("all", false, "follow nextToken and list every page")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: findings list takes no arguments, got %q", ErrUsage, pos)
	}
	for i, f := range filters {
		if *vals[i] != "" {
			q.Set(f.param, *vals[i])
		}
	}
	if *archived != "any" {
		q.Set("archived", *archived)
	}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return fmt.Errorf("%w: --since: %w", ErrUsage, err)
		}
		q.Set("updatedAfter", t.Format(time.RFC3339Nano))
	}
	if *until != "" {
		q.Set("updatedBefore", *until)
	}
	q.Set("limit", strconv.Itoa(*limit))

	var found []*vigilv1.Finding
	var next string
	for {
		body, err := c.call(ctx, http.MethodGet, "/findings", q)
		if err != nil {
			return err
		}
		page, tok, err := decodeList(body, "findings", func() *vigilv1.Finding { return &vigilv1.Finding{} })
		if err != nil {
			return err
		}
		found = append(found, page...)
		next = tok
		if !*all || tok == "" {
			break
		}
		q.Set("nextToken", tok)
	}
	if c.output == "json" {
		items, err := marshalAll(found)
		if err != nil {
			return err
		}
		return c.printJSON(struct {
			Findings  []json.RawMessage `json:"findings"`
			NextToken string            `json:"nextToken,omitempty"`
		}{items, next})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tTYPE\tRESOURCE\tCOUNT\tLAST SEEN\tSTATUS")
	for _, f := range found {
		status := "active"
		if f.GetService().GetArchived() {
			status = "archived"
		}
		fmt.Fprintf(tw, "%s\t%s %.1f\t%s\t%s\t%d\t%s\t%s\n", f.GetId(), f.GetSeverityLabel(), f.GetSeverity(),
			clean(f.GetType()), clean(Resource(f)), f.GetService().GetCount(), when(f.GetService().GetEventLastSeen()), status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(c.stdout, "\nmore: --next-token %s (or --all)\n", next)
	}
	return nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want a duration (24h) or an RFC 3339 time, not %q", s)
	}
	return t, nil
}

func marshalAll[M proto.Message](ms []M) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		b, err := protojson.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Resource is a one-line summary of what a finding is about.
func Resource(f *vigilv1.Finding) string {
	r := f.GetResource()
	var parts []string
	if w := r.GetKubernetesDetails().GetKubernetesWorkloadDetails(); w.GetName() != "" {
		parts = append(parts, "pod "+join("/", w.GetNamespace(), w.GetName()))
	}
	if e := r.GetEcsClusterDetails(); e.GetName() != "" {
		parts = append(parts, "ecs "+join("/", e.GetName(), e.GetTaskDetails().GetFamily()))
	}
	if c := r.GetContainerDetails(); c.GetImage() != "" || c.GetName() != "" {
		parts = append(parts, firstOf(c.GetImage(), c.GetName()))
	}
	if r.GetHostname() != "" {
		parts = append(parts, "host "+r.GetHostname())
	}
	if len(parts) == 0 {
		return r.GetResourceType()
	}
	return strings.Join(parts, ", ")
}

func join(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// clean makes an attacker-controlled string safe for a terminal: control
// characters (escape sequences, carriage returns that overwrite a line,
// tabs that break the table) are shown quoted instead of acted on.
func clean(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			q := strconv.QuoteToGraphic(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

func when(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func (c *command) get(ctx context.Context, args []string) error {
	fs := c.flags("findings get")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: findings get takes one finding id", ErrUsage)
	}
	body, err := c.call(ctx, http.MethodGet, "/findings/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.printJSON(json.RawMessage(body))
	}
	f := &vigilv1.Finding{}
	if err := unmarshal.Unmarshal(body, f); err != nil {
		return fmt.Errorf("decode finding: %w", err)
	}
	return printFinding(c.stdout, f)
}

func printFinding(w io.Writer, f *vigilv1.Finding) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	svc := f.GetService()
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, clean(v))
		}
	}
	row("Id", f.GetId())
	row("Title", f.GetTitle())
	row("Type", f.GetType())
	row("Severity", fmt.Sprintf("%s %.1f", f.GetSeverityLabel(), f.GetSeverity()))
	row("Archived", strconv.FormatBool(svc.GetArchived()))
	row("Count", strconv.FormatUint(uint64(svc.GetCount()), 10))
	row("First seen", when(svc.GetEventFirstSeen()))
	row("Last seen", when(svc.GetEventLastSeen()))
	row("Resource", Resource(f))
	row("Container", f.GetResource().GetContainerDetails().GetId())
	row("Task", f.GetResource().GetEcsClusterDetails().GetTaskDetails().GetArn())
	row("Instance", f.GetResource().GetInstanceDetails().GetInstanceId())
	row("Rule", f.GetEvidence().GetRule())
	row("MITRE", strings.Join(append(append([]string{}, f.GetMitreTactics()...), f.GetMitreTechniques()...), " "))
	row("Description", f.GetDescription())
	if err := tw.Flush(); err != nil {
		return err
	}
	if p := svc.GetRuntimeDetails().GetProcess(); p != nil {
		fmt.Fprintln(w, "\nProcess lineage (oldest first):")
		lin := p.GetLineage()
		depth := 0
		for i := len(lin) - 1; i >= 0; i-- {
			a := lin[i]
			fmt.Fprintf(w, "  %s%s (pid %d) %s\n", strings.Repeat("  ", depth), clean(a.GetName()), a.GetPid(), clean(a.GetExecutablePath()))
			depth++
		}
		fmt.Fprintf(w, "  %s%s (pid %d) %s  <- %s\n", strings.Repeat("  ", depth), clean(p.GetName()), p.GetPid(),
			clean(p.GetExecutablePath()), clean(p.GetCommandLine()))
	}
	if evs := f.GetEvidence().GetEvents(); len(evs) > 0 {
		fmt.Fprintf(w, "\nEvidence (%d events):\n", len(evs))
		for _, e := range evs {
			how := clean(e.GetSyscall())
			if e.GetIoUring() {
				how += " (io_uring)"
			}
			fmt.Fprintf(w, "  %s  %s  %s (pid %d)\n", when(e.GetTime()), how,
				clean(e.GetProcess().GetComm()), e.GetProcess().GetPid())
		}
	}
	if out := f.GetEvidence().GetOutput(); out != "" {
		fmt.Fprintf(w, "\nOutput: %s\n", clean(out))
	}
	return nil
}

func (c *command) archive(ctx context.Context, args []string, archived bool) error {
	verb := "archive"
	if !archived {
		verb = "unarchive"
	}
	fs := c.flags("findings " + verb)
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("%w: findings %s takes one or more finding ids", ErrUsage, verb)
	}
	var done []json.RawMessage
	for _, id := range pos {
		body, err := c.call(ctx, http.MethodPost, "/findings/"+url.PathEscape(id)+"/"+verb, nil)
		if err != nil {
			return err
		}
		if c.output == "json" {
			done = append(done, body)
			continue
		}
		fmt.Fprintf(c.stdout, "%sd %s\n", verb, id)
	}
	if c.output == "json" {
		return c.printJSON(struct {
			Findings []json.RawMessage `json:"findings"`
		}{done})
	}
	return nil
}

func (c *command) sensors(ctx context.Context, args []string) error {
	fs := c.flags("sensors")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: sensors takes no arguments", ErrUsage)
	}
	body, err := c.call(ctx, http.MethodGet, "/sensors", nil)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.printJSON(json.RawMessage(body))
	}
	list, _, err := decodeList(body, "sensors", func() *vigilv1.SensorStatus { return &vigilv1.SensorStatus{} })
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SENSOR\tHOST\tVERSION\tKERNEL\tMODE\tPROBES\tEVENTS\tLOST\tLAST CONTACT\tHEALTHY")
	for _, s := range list {
		h := s.GetHealth()
		host := s.GetHost().GetHostname()
		if host == "" {
			host = h.GetHost().GetHostname()
		}
		kernel := firstOf(h.GetKernel(), s.GetHost().GetKernel())
		healthy := "yes"
		if !s.GetHealthy() {
			healthy = "no"
			if len(s.GetProblems()) > 0 {
				healthy += ": " + strings.Join(s.GetProblems(), "; ")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d loaded, %d skipped\t%d\t%d\t%s\t%s\n",
			clean(s.GetSensorId()), clean(host), clean(firstOf(s.GetVersion(), h.GetVersion())), clean(kernel), clean(h.GetMode()),
			len(h.GetLoadedProbes()), len(h.GetSkippedProbes()), s.GetEventsTotal(),
			h.GetLostRecords()+h.GetSpoolDroppedEvents(), when(s.GetLastContact()), clean(healthy))
	}
	return tw.Flush()
}
