package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/findings"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// maxBodyBytes bounds request bodies; a suppression is a few hundred bytes.
const maxBodyBytes = 1 << 20

// errorBody is every error response.
type errorBody struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg, param string) {
	writeJSON(w, status, errorBody{Error: msg, Parameter: param})
}

// protoJSON encodes a message with the protobuf JSON mapping, so API JSON
// uses the same camelCase names as GuardDuty's findings.
func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return b, nil
}

func protoList[M proto.Message](ms []M) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		b, err := protoJSON(m)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (s *Server) writeProto(w http.ResponseWriter, status int, m proto.Message) {
	b, err := protoJSON(m)
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeJSON(w, status, b)
}

// storeError answers for an error from a store: unknown ids are 404, the
// rest 500 with the detail in the log rather than in the response.
func (s *Server) storeError(w http.ResponseWriter, err error, what string) {
	if errors.Is(err, findings.ErrNotFound) {
		writeError(w, http.StatusNotFound, what+" not found", "")
		return
	}
	s.internalError(w, err)
}

func (s *Server) internalError(w http.ResponseWriter, err error) {
	s.log.Error("request failed", "err", err)
	writeError(w, http.StatusInternalServerError, "internal error", "")
}

type findingList struct {
	Findings  []json.RawMessage `json:"findings"`
	NextToken string            `json:"nextToken,omitempty"`
}

func (s *Server) listFindings(w http.ResponseWriter, r *http.Request) {
	q, perr := parseFindingQuery(r.URL.Query(), s.cfg.DefaultPageSize)
	if perr != nil {
		writeError(w, http.StatusBadRequest, perr.Error(), perr.param)
		return
	}
	list, next, err := s.deps.Findings.ListFindings(r.Context(), q)
	if err != nil {
		if errors.Is(err, findings.ErrInvalidQuery) {
			// The parameters were checked above; what is left for the store
			// to refuse is a token it did not issue for this query.
			writeError(w, http.StatusBadRequest, "nextToken: not a token this server issued for this query", "nextToken")
			return
		}
		s.internalError(w, fmt.Errorf("list findings: %w", err))
		return
	}
	body, err := protoList(list)
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, findingList{Findings: body, NextToken: next})
}

func (s *Server) getFinding(w http.ResponseWriter, r *http.Request) {
	f, err := s.deps.Findings.GetFinding(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, err, "finding")
		return
	}
	s.writeProto(w, http.StatusOK, f)
}

// archive answers POST /findings/{id}/archive and /unarchive with the
// finding as it is afterwards.
func (s *Server) archive(archived bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := s.deps.Findings.SetArchived(r.Context(), id, archived); err != nil {
			s.storeError(w, err, "finding")
			return
		}
		f, err := s.deps.Findings.GetFinding(r.Context(), id)
		if err != nil {
			s.storeError(w, err, "finding")
			return
		}
		s.writeProto(w, http.StatusOK, f)
	}
}

type suppressionList struct {
	Suppressions []json.RawMessage `json:"suppressions"`
}

func (s *Server) listSuppressions(w http.ResponseWriter, r *http.Request) {
	list, err := s.deps.Suppressions.ListSuppressions(r.Context())
	if err != nil {
		s.internalError(w, fmt.Errorf("list suppressions: %w", err))
		return
	}
	body, err := protoList(list)
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, suppressionList{Suppressions: body})
}

func (s *Server) getSuppression(w http.ResponseWriter, r *http.Request) {
	list, err := s.deps.Suppressions.ListSuppressions(r.Context())
	if err != nil {
		s.internalError(w, fmt.Errorf("list suppressions: %w", err))
		return
	}
	id := r.PathValue("id")
	for _, sup := range list {
		if sup.GetId() == id {
			s.writeProto(w, http.StatusOK, sup)
			return
		}
	}
	writeError(w, http.StatusNotFound, "suppression not found", "")
}

func (s *Server) createSuppression(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body larger than 1 MiB", "")
		return
	}
	sup := &vigilv1.Suppression{}
	if err := protojson.Unmarshal(body, sup); err != nil {
		writeError(w, http.StatusBadRequest, "body is not a Suppression: "+err.Error(), "body")
		return
	}
	if perr := validateSuppression(sup); perr != nil {
		writeError(w, http.StatusBadRequest, perr.Error(), perr.param)
		return
	}
	// The store assigns these; a client cannot pick an id or back-date.
	sup.Id, sup.CreatedAt = "", nil
	created, err := s.deps.Suppressions.CreateSuppression(r.Context(), sup)
	if errors.Is(err, findings.ErrInvalidQuery) {
		writeError(w, http.StatusBadRequest, err.Error(), "filter")
		return
	}
	if err != nil {
		s.internalError(w, fmt.Errorf("create suppression: %w", err))
		return
	}
	w.Header().Set("Location", "/api/v1/suppressions/"+created.GetId())
	s.writeProto(w, http.StatusCreated, created)
}

// validateSuppression refuses rules that would archive everything or that
// the finding filter cannot mean.
func validateSuppression(sup *vigilv1.Suppression) *paramError {
	if strings.TrimSpace(sup.GetName()) == "" {
		return badParam("name", "a suppression needs a name")
	}
	if len(sup.GetName()) > 256 || len(sup.GetDescription()) > 4096 {
		return badParam("name", "name up to 256 bytes, description up to 4096")
	}
	f := sup.GetFilter()
	if f == nil || proto.Equal(f, &vigilv1.FindingFilter{}) {
		return badParam("filter", "an empty filter would archive every new finding")
	}
	if i := strings.IndexByte(f.GetType(), '*'); i >= 0 && i != len(f.GetType())-1 {
		return badParam("filter.type", "'*' may only end the type (a prefix match)")
	}
	for _, sev := range []struct {
		name string
		v    float64
	}{{"filter.severityMin", f.GetSeverityMin()}, {"filter.severityMax", f.GetSeverityMax()}} {
		if sev.v < 0 || sev.v > 10 || sev.v != sev.v {
			return badParam(sev.name, "want a number from 0 to 10")
		}
	}
	switch f.GetArchived() {
	case "", "true", "false":
	default:
		return badParam("filter.archived", "want true, false or empty")
	}
	return nil
}

func (s *Server) deleteSuppression(w http.ResponseWriter, r *http.Request) {
	if err := s.deps.Suppressions.DeleteSuppression(r.Context(), r.PathValue("id")); err != nil {
		s.storeError(w, err, "suppression")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type sensorList struct {
	Sensors []json.RawMessage `json:"sensors"`
}

func (s *Server) listSensors(w http.ResponseWriter, r *http.Request) {
	list, err := s.deps.Sensors.ListSensors(r.Context())
	if err != nil {
		s.internalError(w, fmt.Errorf("list sensors: %w", err))
		return
	}
	body, err := protoList(list)
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sensorList{Sensors: body})
}

// RuleSource is the detection rule set in force and the problems of the
// last load. *detect.Watcher implements it.
type RuleSource interface {
	// RuleSet returns the rule set in force (nil before the first load).
	RuleSet() *detect.RuleSet
	// Errors returns the problems found in the rule files at the last load:
	// errors rejected the load, warnings only skipped an item.
	Errors() []detect.LoadError
}

// ruleView is one rule as GET /rules shows it.
type ruleView struct {
	Name            string   `json:"name"`
	Kind            string   `json:"kind"`
	Description     string   `json:"description,omitempty"`
	Priority        string   `json:"priority,omitempty"`
	FindingType     string   `json:"findingType,omitempty"`
	Severity        float64  `json:"severity,omitempty"`
	MitreTactics    []string `json:"mitreTactics,omitempty"`
	MitreTechniques []string `json:"mitreTechniques,omitempty"`
	Tags            []string `json:"tags,omitempty"`
	File            string   `json:"file,omitempty"`
	Line            int      `json:"line,omitempty"`
	Enabled         bool     `json:"enabled"`
	Condition       string   `json:"condition,omitempty"`
	Unsupported     []string `json:"unsupported,omitempty"`
}

func viewRule(info *detect.RuleInfo) ruleView {
	return ruleView{
		Name:            info.Name,
		Kind:            info.Kind,
		Description:     info.Description,
		Priority:        info.Priority,
		FindingType:     info.FindingType,
		Severity:        info.Severity,
		MitreTactics:    info.MitreTactics,
		MitreTechniques: info.MitreTechniques,
		Tags:            info.Tags,
		File:            info.File,
		Line:            info.Line,
		Enabled:         info.Enabled,
		Condition:       info.Condition,
		Unsupported:     info.Unsupported,
	}
}

// loadErrorView is one rule file problem as GET /rules/errors shows it.
type loadErrorView struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Item    string `json:"item,omitempty"`
	Reason  string `json:"reason"`
	Warning bool   `json:"warning"`
}

type ruleList struct {
	Rules []ruleView `json:"rules"`
}

type ruleErrorList struct {
	Errors []loadErrorView `json:"errors"`
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) {
	out := ruleList{Rules: []ruleView{}}
	if s.deps.Rules != nil {
		for _, info := range s.deps.Rules.RuleSet().Rules() {
			out.Rules = append(out.Rules, viewRule(info))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listRuleErrors(w http.ResponseWriter, r *http.Request) {
	out := ruleErrorList{Errors: []loadErrorView{}}
	if s.deps.Rules != nil {
		for _, e := range s.deps.Rules.Errors() {
			out.Errors = append(out.Errors, loadErrorView{File: e.File, Line: e.Line, Item: e.Item, Reason: e.Reason, Warning: e.Warning})
		}
	}
	writeJSON(w, http.StatusOK, out)
}
