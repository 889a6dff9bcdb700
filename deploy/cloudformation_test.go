package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"go.yaml.in/yaml/v3"
)

// cfnTags maps CloudFormation's YAML short forms to their long form.
var cfnTags = map[string]string{
	"!Ref": "Ref", "!Condition": "Condition",
	"!Sub": "Fn::Sub", "!GetAtt": "Fn::GetAtt", "!If": "Fn::If", "!Equals": "Fn::Equals",
	"!Not": "Fn::Not", "!And": "Fn::And", "!Or": "Fn::Or", "!Join": "Fn::Join",
	"!Select": "Fn::Select", "!Split": "Fn::Split", "!FindInMap": "Fn::FindInMap",
	"!GetAZs": "Fn::GetAZs", "!ImportValue": "Fn::ImportValue", "!Base64": "Fn::Base64",
	"!Cidr": "Fn::Cidr",
}

// cfnValue turns a YAML node into plain Go values, writing each short-form
// intrinsic as the one-key map of its long form (what the JSON syntax uses).
func cfnValue(n *yaml.Node) (any, error) {
	if long, ok := cfnTags[n.Tag]; ok {
		var arg any
		switch n.Kind {
		case yaml.ScalarNode:
			arg = n.Value
			if long == "Fn::GetAtt" {
				resource, attr, _ := strings.Cut(n.Value, ".")
				arg = []any{resource, attr}
			}
		default:
			plain := *n
			plain.Tag = ""
			v, err := cfnValue(&plain)
			if err != nil {
				return nil, err
			}
			arg = v
		}
		return map[string]any{long: arg}, nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		return cfnValue(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i < len(n.Content); i += 2 {
			v, err := cfnValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			v, err := cfnValue(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	default:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
}

type template struct {
	Parameters map[string]any
	Conditions map[string]any
	Resources  map[string]map[string]any
	Outputs    map[string]any
	raw        map[string]any
}

func loadTemplate(t *testing.T) *template {
	t.Helper()
	data, err := os.ReadFile("ecs/cloudformation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("parse template: %v", err)
	}
	v, err := cfnValue(&root)
	if err != nil {
		t.Fatalf("parse template: %v", err)
	}
	raw := v.(map[string]any)
	tpl := &template{raw: raw, Resources: map[string]map[string]any{}}
	tpl.Parameters, _ = raw["Parameters"].(map[string]any)
	tpl.Conditions, _ = raw["Conditions"].(map[string]any)
	tpl.Outputs, _ = raw["Outputs"].(map[string]any)
	for name, r := range raw["Resources"].(map[string]any) {
		tpl.Resources[name] = r.(map[string]any)
	}
	return tpl
}

func (tpl *template) resource(t *testing.T, name, typ string) map[string]any {
	t.Helper()
	r, ok := tpl.Resources[name]
	if !ok {
		t.Fatalf("no resource %s", name)
	}
	if r["Type"] != typ {
		t.Fatalf("%s is %v, want %s", name, r["Type"], typ)
	}
	props, _ := r["Properties"].(map[string]any)
	return props
}

var pseudoParams = []string{"AWS::AccountId", "AWS::NoValue", "AWS::Partition", "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix", "AWS::NotificationARNs"}

var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// walk visits every intrinsic function in v.
func walk(v any, visit func(fn string, arg any)) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					visit(k, arg)
				}
			}
		}
		for _, c := range x {
			walk(c, visit)
		}
	case []any:
		for _, c := range x {
			walk(c, visit)
		}
	}
}

// noValue marks what AWS::NoValue removes.
type noValueT struct{}

var noValue = noValueT{}

// resolve evaluates the intrinsics the way CloudFormation would for the
// given conditions, with references replaced by readable stand-ins such as
// "<Ref:Name>". The result can be decoded into API types.
func resolve(t *testing.T, v any, conds map[string]bool) any {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				switch k {
				case "Ref":
					if arg == "AWS::NoValue" {
						return noValue
					}
					return fmt.Sprintf("<Ref:%s>", arg)
				case "Fn::GetAtt":
					a := arg.([]any)
					return fmt.Sprintf("<%s.%s>", a[0], a[1])
				case "Fn::Sub":
					s, ok := arg.(string)
					if !ok {
						t.Fatalf("Fn::Sub with a variable map is not used here: %v", arg)
					}
					return subVar.ReplaceAllString(s, "<$1>")
				case "Fn::If":
					a := arg.([]any)
					c, ok := conds[a[0].(string)]
					if !ok {
						t.Fatalf("condition %v not given", a[0])
					}
					if c {
						return resolve(t, a[1], conds)
					}
					return resolve(t, a[2], conds)
				}
			}
		}
		out := map[string]any{}
		for k, c := range x {
			if r := resolve(t, c, conds); r != noValue {
				out[k] = r
			}
		}
		return out
	case []any:
		out := []any{}
		for _, c := range x {
			if r := resolve(t, c, conds); r != noValue {
				out = append(out, r)
			}
		}
		return out
	}
	return v
}

// taskDefinitionFromTemplate decodes an AWS::ECS::TaskDefinition's
// properties into the SDK input, strictly: CloudFormation spells the API's
// fields in PascalCase, and a property the API does not know fails here.
func taskDefinitionFromTemplate(t *testing.T, tpl *template, name string, conds map[string]bool) *ecs.RegisterTaskDefinitionInput {
	t.Helper()
	props := resolve(t, tpl.resource(t, name, "AWS::ECS::TaskDefinition"), conds)
	data, err := json.Marshal(props)
	if err != nil {
		t.Fatal(err)
	}
	return decodeTaskDefinition(t, data)
}

func TestCloudFormationTemplateReferencesResolve(t *testing.T) {
	tpl := loadTemplate(t)
	used := map[string]bool{}
	check := func(where string) func(fn string, arg any) {
		return func(fn string, arg any) {
			exists := func(name string) bool {
				_, p := tpl.Parameters[name]
				_, r := tpl.Resources[name]
				return p || r || slices.Contains(pseudoParams, name)
			}
			switch fn {
			case "Ref":
				name := arg.(string)
				used[name] = true
				if !exists(name) {
					t.Errorf("%s: !Ref %s names nothing", where, name)
				}
			case "Fn::GetAtt":
				name := arg.([]any)[0].(string)
				if _, ok := tpl.Resources[name]; !ok {
					t.Errorf("%s: !GetAtt %s names no resource", where, name)
				}
			case "Fn::Sub":
				s, _ := arg.(string)
				for _, m := range subVar.FindAllStringSubmatch(s, -1) {
					name, _, _ := strings.Cut(m[1], ".")
					used[name] = true
					if !exists(name) {
						t.Errorf("%s: ${%s} in !Sub names nothing", where, m[1])
					}
				}
			case "Fn::If", "Condition":
				var name string
				if a, ok := arg.([]any); ok {
					name = a[0].(string)
				} else {
					name = arg.(string)
				}
				if _, ok := tpl.Conditions[name]; !ok {
					t.Errorf("%s: condition %s is not defined", where, name)
				}
			}
		}
	}
	for name, r := range tpl.Resources {
		walk(r, check(name))
	}
	for name, o := range tpl.Outputs {
		walk(o, check("output "+name))
	}
	for name, c := range tpl.Conditions {
		walk(c, check("condition "+name))
	}
	for name := range tpl.Parameters {
		if !used[name] {
			t.Errorf("parameter %s is never used", name)
		}
	}
}

func TestCloudFormationTemplateDeploysBothServices(t *testing.T) {
	tpl := loadTemplate(t)
	for _, conds := range []map[string]bool{{"UsePostgres": false}, {"UsePostgres": true}} {
		label := "with SQLite"
		if conds["UsePostgres"] {
			label = "with PostgreSQL"
		}
		t.Run("the sensor task definition "+label+" matches the daemon JSON's privileges and mounts", func(t *testing.T) {
			td := taskDefinitionFromTemplate(t, tpl, "SensorTaskDefinition", conds)
			checkTaskDefinitionRules(t, td)
			checkEC2Sensor(t, td)
			if b, _ := commandFlag(container(td, "sensor"), "backend"); b != "backend.<NamespaceName>:7443" {
				t.Errorf("sensor dials %q, not the Cloud Map name of the backend", b)
			}
		})
		t.Run("the backend task definition "+label+" picks its store from the condition", func(t *testing.T) {
			td := taskDefinitionFromTemplate(t, tpl, "BackendTaskDefinition", conds)
			checkTaskDefinitionRules(t, td)
			checkBackend(t, td)
			c := container(td, "backend")
			_, sqliteFlag := commandFlag(c, "store")
			if sqliteFlag == conds["UsePostgres"] {
				t.Errorf("--store on the command line = %v with UsePostgres = %v", sqliteFlag, conds["UsePostgres"])
			}
			if hasSecret(c, "VIGIL_STORE") != conds["UsePostgres"] {
				t.Errorf("VIGIL_STORE secret present = %v with UsePostgres = %v", hasSecret(c, "VIGIL_STORE"), conds["UsePostgres"])
			}
			rules := container(td, "config").Secrets[0]
			if aws.ToString(rules.Name) != "VIGIL_RULES" || !strings.Contains(aws.ToString(rules.ValueFrom), "parameter<RulesParameter>") {
				t.Errorf("rules come from %q, not the stack's SSM parameter", aws.ToString(rules.ValueFrom))
			}
		})
	}

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{
			name: "the sensor service is a DAEMON on EC2 running the sensor task definition",
			check: func(t *testing.T) {
				p := tpl.resource(t, "SensorService", "AWS::ECS::Service")
				if p["SchedulingStrategy"] != "DAEMON" || p["LaunchType"] != "EC2" {
					t.Errorf("SensorService: SchedulingStrategy=%v LaunchType=%v", p["SchedulingStrategy"], p["LaunchType"])
				}
				if !isRef(p["TaskDefinition"], "SensorTaskDefinition") || !isRef(p["Cluster"], "ClusterName") {
					t.Errorf("SensorService runs %v on %v", p["TaskDefinition"], p["Cluster"])
				}
				if _, ok := p["DesiredCount"]; ok {
					t.Error("a DAEMON service takes no DesiredCount")
				}
			},
		},
		{
			name: "the backend service runs in the given subnets and registers in Cloud Map",
			check: func(t *testing.T) {
				p := tpl.resource(t, "BackendService", "AWS::ECS::Service")
				if !isRef(p["TaskDefinition"], "BackendTaskDefinition") {
					t.Errorf("BackendService runs %v", p["TaskDefinition"])
				}
				vpc := p["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any)
				if !isRef(vpc["Subnets"], "SubnetIds") || vpc["AssignPublicIp"] != "DISABLED" {
					t.Errorf("AwsvpcConfiguration = %v", vpc)
				}
				reg := p["ServiceRegistries"].([]any)[0].(map[string]any)["RegistryArn"]
				if !reflectEqualJSON(reg, map[string]any{"Fn::GetAtt": []any{"BackendDiscovery", "Arn"}}) {
					t.Errorf("RegistryArn = %v", reg)
				}
				d := tpl.resource(t, "BackendDiscovery", "AWS::ServiceDiscovery::Service")
				if d["Name"] != "backend" {
					t.Errorf("Cloud Map service %v; sensors dial backend.<namespace>", d["Name"])
				}
			},
		},
		{
			name: "the backend's gRPC port is open only to the container instances",
			check: func(t *testing.T) {
				p := tpl.resource(t, "BackendSecurityGroup", "AWS::EC2::SecurityGroup")
				for _, r := range p["SecurityGroupIngress"].([]any) {
					rule := r.(map[string]any)
					if rule["FromPort"] == 7443 && !isRef(rule["SourceSecurityGroupId"], "InstanceSecurityGroupId") {
						t.Errorf("gRPC ingress %v is not limited to the instances' security group", rule)
					}
					if rule["CidrIp"] == "0.0.0.0/0" {
						t.Errorf("ingress open to the world: %v", rule)
					}
				}
			},
		},
		{
			name: "tokens are generated in Secrets Manager and rules live in an SSM parameter",
			check: func(t *testing.T) {
				for _, s := range []string{"SensorTokenSecret", "ApiTokenSecret"} {
					p := tpl.resource(t, s, "AWS::SecretsManager::Secret")
					gen, _ := p["GenerateSecretString"].(map[string]any)
					if gen == nil || gen["PasswordLength"].(int) < 32 {
						t.Errorf("%s: %v does not generate a long token", s, gen)
					}
				}
				p := tpl.resource(t, "RulesParameter", "AWS::SSM::Parameter")
				if !isRef(p["Value"], "RulesYaml") {
					t.Errorf("RulesParameter value = %v", p["Value"])
				}
			},
		},
		{
			name: "the only IAM role grants nothing broader than the tasks' own logs, secrets and images",
			check: func(t *testing.T) {
				var roles []string
				for name, r := range tpl.Resources {
					if r["Type"] == "AWS::IAM::Role" {
						roles = append(roles, name)
					}
				}
				sort.Strings(roles)
				if !slices.Equal(roles, []string{"ExecutionRole"}) {
					t.Errorf("IAM roles = %v; the sensor and backend need no AWS API access by default", roles)
				}
				p := tpl.resource(t, "ExecutionRole", "AWS::IAM::Role")
				if _, ok := p["ManagedPolicyArns"]; ok {
					t.Error("managed policies grant more than the tasks need")
				}
				for _, pol := range p["Policies"].([]any) {
					for _, s := range pol.(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
						st := s.(map[string]any)
						actions := asList(st["Action"])
						for _, a := range actions {
							if strings.Contains(a.(string), "*") {
								t.Errorf("statement %v: wildcard action %v", st["Sid"], a)
							}
						}
						for _, r := range asList(st["Resource"]) {
							if r == "*" && !slices.Equal(actions, []any{"ecr:GetAuthorizationToken"}) {
								t.Errorf("statement %v: Resource * for %v", st["Sid"], actions)
							}
						}
					}
				}
				principal := p["AssumeRolePolicyDocument"].(map[string]any)["Statement"].([]any)[0].(map[string]any)["Principal"]
				if !reflectEqualJSON(principal, map[string]any{"Service": "ecs-tasks.amazonaws.com"}) {
					t.Errorf("role trusts %v", principal)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func isRef(v any, name string) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 1 && m["Ref"] == name
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func reflectEqualJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestCfnLintAcceptsTheTemplate runs AWS's CloudFormation linter, which
// checks every resource's properties, types and allowed values against the
// published resource specifications. It is in the Python toolchain of this
// project's machine image (pip cfn-lint); elsewhere the test skips.
func TestCfnLintAcceptsTheTemplate(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint is not installed (pip install cfn-lint)")
	}
	out, err := exec.Command(lint, "--format", "parseable", "ecs/cloudformation.yaml").CombinedOutput()
	if err != nil {
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}
}
