// Package api serves Vigil's read side: the REST API under /api/v1 with its
// OpenAPI document, the Prometheus metrics, and the embedded web page that
// people read findings and sensor coverage with.
package api

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilsec/vigil/findings"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// FindingStore reads findings and archives them. findings.Store implements it.
type FindingStore interface {
	// ListFindings returns one page of findings and the token of the next
	// page ("" on the last one).
	ListFindings(ctx context.Context, q findings.Query) ([]*vigilv1.Finding, string, error)
	// GetFinding returns one finding, or an error wrapping
	// findings.ErrNotFound.
	GetFinding(ctx context.Context, id string) (*vigilv1.Finding, error)
	// SetArchived archives or unarchives one finding.
	SetArchived(ctx context.Context, id string, archived bool) error
}

// SuppressionStore keeps suppression rules. findings.Store implements it.
type SuppressionStore interface {
	// ListSuppressions returns every suppression rule.
	ListSuppressions(ctx context.Context) ([]*vigilv1.Suppression, error)
	// CreateSuppression stores a new rule and returns it with id and
	// creation time set.
	CreateSuppression(ctx context.Context, s *vigilv1.Suppression) (*vigilv1.Suppression, error)
	// DeleteSuppression removes a rule, or returns an error wrapping
	// findings.ErrNotFound.
	DeleteSuppression(ctx context.Context, id string) error
}

// SensorLister reports sensor coverage. findings.Store implements it.
type SensorLister interface {
	// ListSensors returns the status of every sensor the backend has heard
	// from.
	ListSensors(ctx context.Context) ([]*vigilv1.SensorStatus, error)
}

// Deps are the stages the API reads from. The same findings.Store usually
// fills the first three.
type Deps struct {
	Findings     FindingStore
	Suppressions SuppressionStore
	Sensors      SensorLister
	// Rules is the detection engine's active rule set; nil serves empty
	// lists.
	Rules RuleSource
	// Gatherer is what GET /metrics serves; nil uses the registerer given
	// to NewServer when it is also a Gatherer (as *prometheus.Registry is).
	Gatherer prometheus.Gatherer
}

// Config is the API's configuration.
type Config struct {
	// APITokens are the bearer tokens that may read and change findings.
	// Several allow rotation without downtime.
	APITokens []string
	// SensorTokens are the sensors' tokens. The API refuses them with 403
	// and says why, so a misconfigured client learns what is wrong and a
	// leaked sensor token cannot read findings.
	SensorTokens []string
	// DefaultPageSize is the page size of GET /findings without a limit
	// parameter. Default 50.
	DefaultPageSize int
}

// MaxPageSize is the largest limit GET /findings accepts.
const MaxPageSize = 1000

// Validate checks the configuration and says which key is wrong and why.
func (c Config) Validate() error {
	if len(c.APITokens) == 0 {
		return errors.New("api token: at least one is required")
	}
	for i, t := range c.APITokens {
		if len(t) < 16 {
			return fmt.Errorf("api token %d: needs at least 16 characters (a guessable token guards every finding)", i+1)
		}
		for _, s := range c.SensorTokens {
			if subtle.ConstantTimeCompare([]byte(t), []byte(s)) == 1 {
				return fmt.Errorf("api token %d: is also a sensor token", i+1)
			}
		}
	}
	if c.DefaultPageSize < 0 || c.DefaultPageSize > MaxPageSize {
		return fmt.Errorf("default page size: %d is outside 0..%d", c.DefaultPageSize, MaxPageSize)
	}
	return nil
}

//go:embed web
var webFiles embed.FS

//go:embed openapi.json
var openAPIDocument []byte

// contentSecurityPolicy forbids inline scripts, plugins, base rewriting and
// framing: the page shows attacker-controlled strings from events, and even
// if one slipped into markup it could not run.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// Server is the backend's HTTP handler: REST API, OpenAPI document, metrics
// and web page.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	mux      *http.ServeMux
	handler  http.Handler
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	authFail *prometheus.CounterVec
}

// NewServer builds the handler. The caller serves it (http.Server) and owns
// the stores.
func NewServer(cfg Config, deps Deps, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	if deps.Findings == nil || deps.Suppressions == nil || deps.Sensors == nil {
		return nil, errors.New("api deps: findings, suppressions and sensors are required")
	}
	if cfg.DefaultPageSize == 0 {
		cfg.DefaultPageSize = 50
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if deps.Gatherer == nil {
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			// Serving an empty registry would hide every metric without a word.
			return nil, errors.New("api deps: Gatherer is required when the registerer is not a prometheus.Gatherer")
		}
		deps.Gatherer = g
	}
	s := &Server{
		cfg:  cfg,
		deps: deps,
		log:  log.With("component", "api"),
		mux:  http.NewServeMux(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_api_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_api_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_api_auth_failures_total",
			Help: "Requests refused for their token, by reason (missing, invalid, sensor_token).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{s.requests, s.duration, s.authFail} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	if err := s.routes(); err != nil {
		return nil, err
	}
	// A page of 1000 findings with their evidence runs to megabytes of
	// JSON that compresses tenfold; small responses are left alone.
	s.handler = gzhttp.GzipHandler(s.mux)
	return s, nil
}

func (s *Server) routes() error {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.Handle("GET /metrics", promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{}))
	m.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	})

	m.Handle("GET /api/v1/findings", s.authed(s.listFindings))
	m.Handle("GET /api/v1/findings/{id}", s.authed(s.getFinding))
	m.Handle("POST /api/v1/findings/{id}/archive", s.authed(s.archive(true)))
	m.Handle("POST /api/v1/findings/{id}/unarchive", s.authed(s.archive(false)))
	m.Handle("GET /api/v1/suppressions", s.authed(s.listSuppressions))
	m.Handle("POST /api/v1/suppressions", s.authed(s.createSuppression))
	m.Handle("GET /api/v1/suppressions/{id}", s.authed(s.getSuppression))
	m.Handle("DELETE /api/v1/suppressions/{id}", s.authed(s.deleteSuppression))
	m.Handle("GET /api/v1/sensors", s.authed(s.listSensors))
	m.Handle("GET /api/v1/rules", s.authed(s.listRules))
	m.Handle("GET /api/v1/rules/errors", s.authed(s.listRuleErrors))
	// Anything else under /api/ answers in JSON, not with the web page.
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path, "")
	})

	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		return fmt.Errorf("web assets: %w", err)
	}
	files := http.FileServerFS(web)
	// "/" rather than "GET /": a method pattern on the root would conflict
	// with the more specific "/api/" catch-all above.
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// The page changes with the binary; a stale cached script against a
		// newer API is worse than a reload.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	return nil
}

// ServeHTTP sets the security headers every response carries, serves the
// request and records its metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		h.Set("Cache-Control", "no-store")
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.handler.ServeHTTP(rec, r)
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	s.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
	s.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// authed admits requests that carry an API token.
func (s *Server) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		switch {
		case !ok:
			s.authFail.WithLabelValues("missing").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <API token>", "")
		case matchesAny(token, s.cfg.APITokens):
			h(w, r)
		case matchesAny(token, s.cfg.SensorTokens):
			s.authFail.WithLabelValues("sensor_token").Inc()
			writeError(w, http.StatusForbidden, "this is a sensor token; the API needs an API token", "")
		default:
			s.authFail.WithLabelValues("invalid").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid token", "")
		}
	})
}

func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// matchesAny compares in constant time so response timing does not reveal
// how much of a guessed token was right.
func matchesAny(token string, tokens []string) bool {
	found := 0
	for _, t := range tokens {
		found |= subtle.ConstantTimeCompare([]byte(token), []byte(t))
	}
	return found == 1
}
