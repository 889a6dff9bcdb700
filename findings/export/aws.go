package export

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// SecurityHubConfig configures the Security Hub exporter.
type SecurityHubConfig struct {
	// AccountID and Region name the account and Region findings are
	// imported into; a finding without an account id gets AccountID.
	AccountID string
	Region    string
	// Partition is "aws" unless set ("aws-cn", "aws-us-gov").
	Partition string
	// ProductArn is the product findings are imported as; default the
	// account's own "default" product, which accepts custom findings.
	ProductArn string
	// Endpoint overrides the service endpoint (tests, VPC endpoints).
	Endpoint string
}

// SecurityHub imports findings into AWS Security Hub in the AWS Security
// Finding Format with BatchImportFindings.
type SecurityHub struct {
	cfg    SecurityHubConfig
	client *securityhub.Client
}

// NewSecurityHub builds the exporter from an AWS configuration (credentials
// and retries come from it).
func NewSecurityHub(cfg SecurityHubConfig, awsCfg aws.Config) (*SecurityHub, error) {
	if cfg.AccountID == "" {
		return nil, fmt.Errorf("security hub: account id is required")
	}
	if cfg.Region == "" {
		cfg.Region = awsCfg.Region
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("security hub: region is required")
	}
	if cfg.Partition == "" {
		cfg.Partition = "aws"
	}
	if cfg.ProductArn == "" {
		cfg.ProductArn = fmt.Sprintf("arn:%s:securityhub:%s:%s:product/%s/default", cfg.Partition, cfg.Region, cfg.AccountID, cfg.AccountID)
	}
	client := securityhub.NewFromConfig(awsCfg, func(o *securityhub.Options) {
		o.Region = cfg.Region
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &SecurityHub{cfg: cfg, client: client}, nil
}

// Name implements Exporter.
func (s *SecurityHub) Name() string { return "securityhub" }

// MaxBatch implements Exporter: BatchImportFindings takes at most 100.
func (s *SecurityHub) MaxBatch() int { return 100 }

// Export implements Exporter. Security Hub updates a finding it already has
// (same product and id), so a repeated batch is harmless.
func (s *SecurityHub) Export(ctx context.Context, fs []*vigilv1.Finding) error {
	in := &securityhub.BatchImportFindingsInput{}
	for _, f := range fs {
		in.Findings = append(in.Findings, ToASFF(f, s.cfg))
	}
	out, err := s.client.BatchImportFindings(ctx, in)
	if err != nil {
		return fmt.Errorf("security hub: import: %w", err)
	}
	if n := aws.ToInt32(out.FailedCount); n > 0 {
		var reasons []string
		for _, e := range out.FailedFindings {
			reasons = append(reasons, aws.ToString(e.Id)+": "+aws.ToString(e.ErrorCode)+" "+aws.ToString(e.ErrorMessage))
		}
		return fmt.Errorf("security hub: %d of %d findings failed: %s", n, len(fs), strings.Join(reasons, "; "))
	}
	return nil
}

// asffCategory maps GuardDuty threat purposes to ASFF finding type
// namespaces and categories.
var asffCategory = map[string]string{
	"Execution":           "TTPs/Execution",
	"Persistence":         "TTPs/Persistence",
	"PrivilegeEscalation": "TTPs/Privilege Escalation",
	"DefenseEvasion":      "TTPs/Defense Evasion",
	"Discovery":           "TTPs/Discovery",
	"CredentialAccess":    "TTPs/Credential Access",
	"Backdoor":            "TTPs/Command and Control",
	"Trojan":              "TTPs/Command and Control",
	"UnauthorizedAccess":  "TTPs/Initial Access",
	"CryptoCurrency":      "Effects/Resource Consumption",
	"Impact":              "Effects/Resource Consumption",
	"AttackSequence":      "TTPs",
}

const (
	asffTitleMax       = 256
	asffDescriptionMax = 1024
)

// ToASFF renders a finding in the AWS Security Finding Format.
func ToASFF(f *vigilv1.Finding, cfg SecurityHubConfig) shtypes.AwsSecurityFinding {
	account := f.GetAccountId()
	if account == "" {
		account = cfg.AccountID
	}
	region := f.GetRegion()
	if region == "" {
		region = cfg.Region
	}
	purpose, _, _ := strings.Cut(f.GetType(), ":")
	category, ok := asffCategory[purpose]
	if !ok {
		category = "Unusual Behaviors/Process"
	}
	svc := f.GetService()
	out := shtypes.AwsSecurityFinding{
		SchemaVersion:   aws.String("2018-10-08"),
		Id:              aws.String(f.GetId()),
		ProductArn:      aws.String(cfg.ProductArn),
		ProductName:     aws.String("Vigil"),
		CompanyName:     aws.String("Vigil"),
		GeneratorId:     aws.String("vigil/" + firstNonEmpty(f.GetEvidence().GetRule(), f.GetType())),
		AwsAccountId:    aws.String(account),
		Region:          aws.String(region),
		Types:           []string{category + "/" + f.GetType()},
		CreatedAt:       aws.String(rfc3339(f.GetCreatedAt().AsTime())),
		UpdatedAt:       aws.String(rfc3339(f.GetUpdatedAt().AsTime())),
		FirstObservedAt: aws.String(rfc3339(svc.GetEventFirstSeen().AsTime())),
		LastObservedAt:  aws.String(rfc3339(svc.GetEventLastSeen().AsTime())),
		Severity: &shtypes.Severity{
			Label:    shtypes.SeverityLabel(strings.ToUpper(f.GetSeverityLabel())),
			Original: aws.String(fmt.Sprintf("%.1f", f.GetSeverity())),
		},
		Title:       aws.String(truncate(f.GetTitle(), asffTitleMax)),
		Description: aws.String(truncate(firstNonEmpty(f.GetDescription(), f.GetTitle()), asffDescriptionMax)),
		RecordState: shtypes.RecordStateActive,
		ProductFields: map[string]string{
			"vigil/type":  f.GetType(),
			"vigil/count": fmt.Sprint(svc.GetCount()),
			"vigil/rule":  f.GetEvidence().GetRule(),
		},
		Resources: asffResources(f, cfg.Partition, region, account),
	}
	if svc.GetArchived() {
		out.RecordState = shtypes.RecordStateArchived
	}
	if id := f.GetAttackSequenceId(); id != "" {
		out.ProductFields["vigil/attackSequenceId"] = id
	}
	for _, id := range f.GetEvidence().GetRelatedFindingIds() {
		out.RelatedFindings = append(out.RelatedFindings, shtypes.RelatedFinding{ProductArn: aws.String(cfg.ProductArn), Id: aws.String(id)})
	}
	if p := svc.GetRuntimeDetails().GetProcess(); p != nil {
		pd := &shtypes.ProcessDetails{Name: aws.String(truncate(p.GetName(), 128)), Path: aws.String(truncate(p.GetExecutablePath(), 512))}
		if p.GetPid() != 0 {
			pd.Pid = aws.Int32(int32(p.GetPid()))
		}
		if l := p.GetLineage(); len(l) > 0 && l[0].GetPid() != 0 {
			pd.ParentPid = aws.Int32(int32(l[0].GetPid()))
		}
		if p.GetStartTime() != nil {
			pd.LaunchedAt = aws.String(rfc3339(p.GetStartTime().AsTime()))
		}
		out.Process = pd
	}
	return out
}

func asffResources(f *vigilv1.Finding, partition, region, account string) []shtypes.Resource {
	r := f.GetResource()
	base := func(typ, id string) shtypes.Resource {
		return shtypes.Resource{Type: aws.String(typ), Id: aws.String(id), Partition: shtypes.Partition(partition), Region: aws.String(region)}
	}
	var out []shtypes.Resource
	if c := r.GetContainerDetails(); c.GetId() != "" {
		res := base("Container", c.GetId())
		res.Details = &shtypes.ResourceDetails{Container: &shtypes.ContainerDetails{
			ContainerRuntime: aws.String(c.GetContainerRuntime()),
			Name:             aws.String(c.GetName()),
			ImageName:        aws.String(c.GetImage()),
			Privileged:       aws.Bool(c.GetSecurityContext().GetPrivileged()),
		}}
		out = append(out, res)
	}
	if t := r.GetEcsClusterDetails().GetTaskDetails().GetArn(); t != "" {
		out = append(out, base("AwsEcsTask", t))
	}
	if w := r.GetKubernetesDetails().GetKubernetesWorkloadDetails(); w.GetName() != "" {
		res := base("Other", "kubernetes/"+w.GetNamespace()+"/pods/"+w.GetName())
		res.Details = &shtypes.ResourceDetails{Other: map[string]string{"namespace": w.GetNamespace(), "pod": w.GetName(), "uid": w.GetUid()}}
		out = append(out, res)
	}
	if id := r.GetInstanceDetails().GetInstanceId(); id != "" {
		out = append(out, base("AwsEc2Instance", fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", partition, region, account, id)))
	}
	if len(out) == 0 {
		out = append(out, base("Other", "host/"+firstNonEmpty(r.GetHostname(), r.GetSensorId(), "unknown")))
	}
	return out
}

// EventBridgeConfig configures the EventBridge exporter.
type EventBridgeConfig struct {
	// EventBusName is the bus events go to; default "default".
	EventBusName string
	// Source is the events' source; default "vigil.findings".
	Source string
	// DetailType is the events' detail type; default "Vigil Runtime
	// Finding".
	DetailType string
	// Region overrides the AWS configuration's Region.
	Region string
	// Endpoint overrides the service endpoint (tests, VPC endpoints).
	Endpoint string
}

// EventBridge puts each finding on an event bus as an event whose detail is
// the finding's JSON, as GuardDuty's own events carry theirs.
type EventBridge struct {
	cfg    EventBridgeConfig
	client *eventbridge.Client
}

// NewEventBridge builds the exporter from an AWS configuration.
func NewEventBridge(cfg EventBridgeConfig, awsCfg aws.Config) (*EventBridge, error) {
	if cfg.EventBusName == "" {
		cfg.EventBusName = "default"
	}
	if cfg.Source == "" {
		cfg.Source = "vigil.findings"
	}
	if cfg.DetailType == "" {
		cfg.DetailType = "Vigil Runtime Finding"
	}
	if cfg.Region == "" && awsCfg.Region == "" {
		return nil, fmt.Errorf("eventbridge: region is required")
	}
	client := eventbridge.NewFromConfig(awsCfg, func(o *eventbridge.Options) {
		if cfg.Region != "" {
			o.Region = cfg.Region
		}
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &EventBridge{cfg: cfg, client: client}, nil
}

// Name implements Exporter.
func (e *EventBridge) Name() string { return "eventbridge" }

// MaxBatch implements Exporter: PutEvents takes at most 10 entries.
func (e *EventBridge) MaxBatch() int { return 10 }

// maxEventDetail keeps an entry under PutEvents' 256 KiB limit.
const maxEventDetail = 200 << 10

// Export implements Exporter. Evidence events are left out of a finding too
// large for one event.
func (e *EventBridge) Export(ctx context.Context, fs []*vigilv1.Finding) error {
	in := &eventbridge.PutEventsInput{}
	for _, f := range fs {
		detail, err := protojson.Marshal(f)
		if err != nil {
			return fmt.Errorf("eventbridge: encode: %w: %w", err, ErrPermanent)
		}
		if len(detail) > maxEventDetail {
			slim := cloneWithoutEvents(f)
			if detail, err = protojson.Marshal(slim); err != nil {
				return fmt.Errorf("eventbridge: encode: %w: %w", err, ErrPermanent)
			}
		}
		at := f.GetUpdatedAt().AsTime()
		entry := ebtypes.PutEventsRequestEntry{
			EventBusName: aws.String(e.cfg.EventBusName),
			Source:       aws.String(e.cfg.Source),
			DetailType:   aws.String(e.cfg.DetailType),
			Detail:       aws.String(string(detail)),
			Time:         &at,
		}
		if t := f.GetResource().GetEcsClusterDetails().GetTaskDetails().GetArn(); t != "" {
			entry.Resources = []string{t}
		}
		in.Entries = append(in.Entries, entry)
	}
	out, err := e.client.PutEvents(ctx, in)
	if err != nil {
		return fmt.Errorf("eventbridge: put events: %w", err)
	}
	if n := out.FailedEntryCount; n > 0 {
		var reasons []string
		for i, r := range out.Entries {
			if r.ErrorCode != nil && i < len(fs) {
				reasons = append(reasons, fs[i].GetId()+": "+aws.ToString(r.ErrorCode)+" "+aws.ToString(r.ErrorMessage))
			}
		}
		return fmt.Errorf("eventbridge: %d of %d events failed: %s", n, len(fs), strings.Join(reasons, "; "))
	}
	return nil
}

func cloneWithoutEvents(f *vigilv1.Finding) *vigilv1.Finding {
	c := proto.Clone(f).(*vigilv1.Finding)
	if c.Evidence != nil {
		c.Evidence.Events = nil
	}
	return c
}

func rfc3339(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
