package api

// openapi.json is openapi.in.json plus schemas generated from the protobuf
// descriptors; the test that checks it is current also rewrites it.

//go:generate go test -run TestOpenAPIDocumentIsCurrent -update .
