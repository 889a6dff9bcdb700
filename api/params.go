package api

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/findings"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// paramError is a bad query parameter: the response names it so a script
// author sees which one to fix.
type paramError struct {
	param string
	msg   string
}

func (e *paramError) Error() string { return e.param + ": " + e.msg }

func badParam(param, format string, args ...any) *paramError {
	return &paramError{param: param, msg: fmt.Sprintf(format, args...)}
}

// maxParamLen bounds every parameter: no filter value is this long, and the
// store should not be asked to compare megabytes.
const maxParamLen = 1024

// stringFilters are the exact-match filters, by parameter name.
var stringFilters = map[string]func(f *vigilv1.FindingFilter, v string){
	"cluster":     func(f *vigilv1.FindingFilter, v string) { f.Cluster = v },
	"taskArn":     func(f *vigilv1.FindingFilter, v string) { f.TaskArn = v },
	"namespace":   func(f *vigilv1.FindingFilter, v string) { f.Namespace = v },
	"pod":         func(f *vigilv1.FindingFilter, v string) { f.Pod = v },
	"image":       func(f *vigilv1.FindingFilter, v string) { f.Image = v },
	"containerId": func(f *vigilv1.FindingFilter, v string) { f.ContainerId = v },
	"instanceId":  func(f *vigilv1.FindingFilter, v string) { f.InstanceId = v },
	"hostname":    func(f *vigilv1.FindingFilter, v string) { f.Hostname = v },
	"rule":        func(f *vigilv1.FindingFilter, v string) { f.Rule = v },
}

// otherParams are the remaining parameters GET /findings knows.
var otherParams = map[string]bool{
	"type": true, "severityMin": true, "severityMax": true,
	"updatedAfter": true, "updatedBefore": true, "archived": true,
	"sortBy": true, "order": true, "limit": true, "nextToken": true,
}

// parseFindingQuery turns GET /findings parameters into a store query.
// Unknown parameters are refused rather than ignored: a misspelt filter that
// silently matched everything would mislead whoever reads the result.
func parseFindingQuery(v url.Values, defaultLimit int) (findings.Query, *paramError) {
	f := &vigilv1.FindingFilter{}
	q := findings.Query{Filter: f, SortBy: "lastSeen", Limit: defaultLimit}
	for name, vals := range v {
		if stringFilters[name] == nil && !otherParams[name] {
			return q, badParam(name, "unknown parameter")
		}
		if len(vals) != 1 {
			return q, badParam(name, "given %d times; give it once", len(vals))
		}
		if len(vals[0]) > maxParamLen {
			return q, badParam(name, "longer than %d bytes", maxParamLen)
		}
		if vals[0] == "" {
			return q, badParam(name, "empty value")
		}
	}
	for name, set := range stringFilters {
		if val := v.Get(name); val != "" {
			set(f, val)
		}
	}
	if t := v.Get("type"); t != "" {
		if i := strings.IndexByte(t, '*'); i >= 0 && i != len(t)-1 {
			return q, badParam("type", "'*' may only end the type (a prefix match)")
		}
		f.Type = t
	}
	var err *paramError
	if f.SeverityMin, err = severityParam(v, "severityMin"); err != nil {
		return q, err
	}
	if f.SeverityMax, err = severityParam(v, "severityMax"); err != nil {
		return q, err
	}
	if f.SeverityMin > 0 && f.SeverityMax > 0 && f.SeverityMin > f.SeverityMax {
		return q, badParam("severityMin", "greater than severityMax")
	}
	if f.UpdatedAfter, err = timeParam(v, "updatedAfter"); err != nil {
		return q, err
	}
	if f.UpdatedBefore, err = timeParam(v, "updatedBefore"); err != nil {
		return q, err
	}
	if f.UpdatedAfter != nil && f.UpdatedBefore != nil && f.UpdatedAfter.AsTime().After(f.UpdatedBefore.AsTime()) {
		return q, badParam("updatedAfter", "later than updatedBefore")
	}
	switch a := v.Get("archived"); a {
	case "", "any":
	case "true", "false":
		f.Archived = a
	default:
		return q, badParam("archived", "want true, false or any, not %q", a)
	}
	switch s := v.Get("sortBy"); s {
	case "", "lastSeen":
	case "severity":
		q.SortBy = "severity"
	default:
		return q, badParam("sortBy", "want lastSeen or severity, not %q", s)
	}
	switch o := v.Get("order"); o {
	case "", "desc":
	case "asc":
		q.Ascending = true
	default:
		return q, badParam("order", "want asc or desc, not %q", o)
	}
	if l := v.Get("limit"); l != "" {
		n, perr := strconv.Atoi(l)
		if perr != nil || n < 1 || n > MaxPageSize {
			return q, badParam("limit", "want a whole number from 1 to %d, not %q", MaxPageSize, l)
		}
		q.Limit = n
	}
	q.NextToken = v.Get("nextToken")
	return q, nil
}

func severityParam(v url.Values, name string) (float64, *paramError) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(x) || x < 0 || x > 10 {
		return 0, badParam(name, "want a number from 0 to 10, not %q", s)
	}
	return x, nil
}

func timeParam(v url.Values, name string) (*timestamppb.Timestamp, *paramError) {
	s := v.Get(name)
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, badParam(name, "want an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", s)
	}
	return timestamppb.New(t), nil
}
