//! Multiboot 1 header and the 32-bit trampoline that enters long mode and jumps to the higher half.
//!
//! The loader (QEMU `-kernel`, GRUB) jumps to `_start32` in 32-bit protected mode with
//! paging off, EAX = Multiboot magic and EBX = physical address of the boot information.
//! The trampoline builds temporary page tables that map physical 0..4 GiB three times —
//! identity (for the jump itself), at the direct-map base, and 0..1 GiB at the kernel's
//! link address — enables long mode and calls `kernel_main(magic, info)` on the kernel stack.
//! `paging::init` later replaces these tables with precise, W^X ones.

use core::arch::global_asm;

// Multiboot header: flags = page-align modules (bit 0) | memory info (bit 1) |
// address fields valid (bit 16). The address fields let a loader place the 64-bit ELF
// as a flat image, which is what QEMU's Multiboot loader requires.
global_asm!(
    r#"
    .section .multiboot_header, "a"
    .balign 4
multiboot_header:
    .long 0x1BADB002
    .long 0x00010003
    .long -(0x1BADB002 + 0x00010003)
    .long multiboot_header
    .long __kernel_phys_start
    .long __load_end_phys
    .long __bss_end_phys
    .long _start32

    .section .boot.rodata, "a"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit kernel code */
    .quad 0x00cf92000000ffff    /* 0x10: kernel data */
boot_gdt_end:
boot_gdt_pointer:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
no_long_mode_message:
    .asciz "Vigil: this CPU does not support 64-bit long mode; halting.\r\n"

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    movl %eax, %edi                 /* Multiboot magic, first argument of kernel_main */
    movl %ebx, %esi                 /* Multiboot info, second argument */
    movl $__kernel_stack_top_phys, %esp

    /* Long mode present? CPUID 0x80000001 EDX bit 29. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz no_long_mode

    /* Zero the seven boot page-table pages. */
    pushl %edi
    movl $__boot_page_tables_phys, %edi
    movl $(7 * 1024), %ecx
    xorl %eax, %eax
    rep stosl
    popl %edi

    /* Four page directories: 2048 2 MiB pages covering 0..4 GiB (present, writable, PS). */
    movl $(__boot_page_tables_phys + 3 * 4096), %ebx
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, (%ebx, %ecx, 8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, 4(%ebx, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b

    /* Low PDPT: entries 0..3 point at the four page directories. */
    movl $(__boot_page_tables_phys + 3 * 4096 + 3), %eax
    movl %eax, (__boot_page_tables_phys + 1 * 4096 + 0)
    addl $4096, %eax
    movl %eax, (__boot_page_tables_phys + 1 * 4096 + 8)
    addl $4096, %eax
    movl %eax, (__boot_page_tables_phys + 1 * 4096 + 16)
    addl $4096, %eax
    movl %eax, (__boot_page_tables_phys + 1 * 4096 + 24)

    /* High PDPT: entry 510 (0xffffffff80000000) maps physical 0..1 GiB. */
    movl $(__boot_page_tables_phys + 3 * 4096 + 3), %eax
    movl %eax, (__boot_page_tables_phys + 2 * 4096 + 510 * 8)

    /* PML4: identity (0), direct map (256), kernel (511). */
    movl $(__boot_page_tables_phys + 1 * 4096 + 3), %eax
    movl %eax, (__boot_page_tables_phys + 0)
    movl %eax, (__boot_page_tables_phys + 256 * 8)
    movl $(__boot_page_tables_phys + 2 * 4096 + 3), %eax
    movl %eax, (__boot_page_tables_phys + 511 * 8)

    /* PAE on, load CR3, EFER.LME, then paging + write protect. */
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl $__boot_page_tables_phys, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdt_pointer
    ljmp $0x08, $start64_low

no_long_mode:
    movl $no_long_mode_message, %esi
    movw $0x3f8, %dx
2:
    lodsb
    testb %al, %al
    jz 3f
    outb %al, %dx
    jmp 2b
3:
    hlt
    jmp 3b

    .code64
start64_low:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $start64_high, %rax
    jmp *%rax

    .section .text.boot64, "ax"
start64_high:
    movabsq $__kernel_stack_top, %rsp
    xorl %ebp, %ebp
    movl %edi, %edi                 /* upper halves are undefined after the mode switch */
    movl %esi, %esi
    call kernel_main
    ud2
    "#,
    options(att_syntax)
);
