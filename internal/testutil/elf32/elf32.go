// Package elf32 builds a tiny 32-bit executable for tests.
package elf32

import "encoding/binary"

// ExitProgram returns a minimal static i386 executable that exits with code
// through the int 0x80 system call gate. It is built byte by byte so tests
// need no 32-bit assembler or multilib toolchain; an x86-64 kernel with
// IA32 emulation runs it in compatibility mode.
func ExitProgram(code byte) []byte {
	const (
		base    = 0x08048000
		ehsize  = 52
		phsize  = 32
		codeOff = ehsize + phsize
	)
	text := []byte{
		0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (exit)
		0xbb, code, 0x00, 0x00, 0x00, // mov ebx, code
		0xcd, 0x80, // int 0x80
	}
	size := uint32(codeOff + len(text))
	le := binary.LittleEndian
	b := make([]byte, 0, size)
	b = append(b, 0x7f, 'E', 'L', 'F', 1 /* ELFCLASS32 */, 1 /* little-endian */, 1 /* version */)
	b = append(b, make([]byte, 9)...) // OS ABI, ABI version, padding
	b = le.AppendUint16(b, 2)         // e_type: ET_EXEC
	b = le.AppendUint16(b, 3)         // e_machine: EM_386
	b = le.AppendUint32(b, 1)         // e_version
	b = le.AppendUint32(b, base+codeOff)
	b = le.AppendUint32(b, ehsize) // e_phoff
	b = le.AppendUint32(b, 0)      // e_shoff
	b = le.AppendUint32(b, 0)      // e_flags
	b = le.AppendUint16(b, ehsize)
	b = le.AppendUint16(b, phsize)
	b = le.AppendUint16(b, 1) // e_phnum
	b = le.AppendUint16(b, 0) // e_shentsize
	b = le.AppendUint16(b, 0) // e_shnum
	b = le.AppendUint16(b, 0) // e_shstrndx
	// One PT_LOAD segment maps the whole file, readable and executable.
	b = le.AppendUint32(b, 1) // p_type
	b = le.AppendUint32(b, 0) // p_offset
	b = le.AppendUint32(b, base)
	b = le.AppendUint32(b, base)
	b = le.AppendUint32(b, size) // p_filesz
	b = le.AppendUint32(b, size) // p_memsz
	b = le.AppendUint32(b, 5)    // p_flags: R|X
	b = le.AppendUint32(b, 0x1000)
	return append(b, text...)
}
