// Package proto holds Vigil's protobuf definitions; the generated Go code is
// in the vigilv1 subpackage. Regenerate with `make generate`.
package proto

//go:generate sh -c "PATH=$(go env GOROOT)/bin:$PATH; cd .. && go build -o .bin/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc && protoc -I proto --plugin=protoc-gen-go=.bin/protoc-gen-go --plugin=protoc-gen-go-grpc=.bin/protoc-gen-go-grpc --go_out=proto --go_opt=paths=source_relative --go-grpc_out=proto --go-grpc_opt=paths=source_relative proto/vigil/v1/event.proto proto/vigil/v1/sensor.proto proto/vigil/v1/finding.proto"
