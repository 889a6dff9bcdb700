// Package deploy holds Vigil's deployment artefacts that are not Go code:
// container images (docker/), Amazon ECS task definitions and a
// CloudFormation template (ecs/), and systemd units (systemd/). Its tests
// decode each artefact into the types of the system that will consume it
// (aws-sdk-go-v2's ECS inputs, CloudFormation's intrinsic functions, systemd
// unit sections) and check the settings Vigil depends on.
package deploy
