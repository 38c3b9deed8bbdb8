//! 16550 UART driver for the serial ports: COM1 is the console, COM2 the monitor channel.

use super::cpu;

/// A 16550-compatible serial port at a fixed I/O base.
#[derive(Clone, Copy, Debug)]
pub struct SerialPort {
    base: u16,
}

/// COM1: the text console.
pub const COM1: SerialPort = SerialPort { base: 0x3f8 };
/// COM2: reserved for the binary monitor protocol.
pub const COM2: SerialPort = SerialPort { base: 0x2f8 };

/// The 16550 registers this driver uses, as offsets from the port base.
#[derive(Clone, Copy)]
#[repr(u16)]
enum Register {
    Data = 0,
    InterruptEnable = 1,
    FifoControl = 2,
    LineControl = 3,
    ModemControl = 4,
    LineStatus = 5,
    Scratch = 7,
}

/// Interrupt-enable bit: received data available (and the FIFO's character timeout).
const INTERRUPT_RECEIVED_DATA: u8 = 1 << 0;
const LINE_STATUS_DATA_READY: u8 = 1 << 0;
const LINE_STATUS_TRANSMIT_EMPTY: u8 = 1 << 5;

/// Bounded wait for the transmitter, so a wedged or absent UART never hangs the kernel.
const TRANSMIT_SPIN_LIMIT: u32 = 100_000;

impl SerialPort {
    /// Writes one of this UART's registers.
    fn write(self, register: Register, value: u8) {
        // SAFETY: `base` is COM1's or COM2's (the field is private and the two constants
        // are the only values), so the port is one of that UART's registers; the serial
        // ports are driven only by this type, and a UART cannot reach memory.
        unsafe { cpu::outb(self.base + register as u16, value) }
    }

    /// Reads one of this UART's registers.
    fn read(self, register: Register) -> u8 {
        // SAFETY: as for `write`; the reads this driver does (scratch, line status, data
        // when the line status says a byte is ready) are the ones the 16550 expects.
        unsafe { cpu::inb(self.base + register as u16) }
    }

    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off. Returns false when no UART
    /// answers at this base (the scratch register does not hold a value).
    pub fn init(self) -> bool {
        self.write(Register::Scratch, 0x5a);
        if self.read(Register::Scratch) != 0x5a {
            return false;
        }
        self.write(Register::InterruptEnable, 0x00);
        self.write(Register::LineControl, 0x80); // DLAB on: next two bytes are the divisor
        self.write(Register::Data, 0x01); // divisor 1 = 115200 baud
        self.write(Register::InterruptEnable, 0x00);
        self.write(Register::LineControl, 0x03); // 8 bits, no parity, one stop bit
        self.write(Register::FifoControl, 0xc7); // enable + clear FIFOs, 14-byte threshold
        self.write(Register::ModemControl, 0x0b); // DTR, RTS, OUT2
        true
    }

    /// Turns the received-data interrupt on or off. The line (IRQ 4 for COM1, 3 for COM2)
    /// reaches the CPU only where the I/O APIC routes it; OUT2, set by `init`, gates it.
    pub fn set_receive_interrupt(self, enabled: bool) {
        let value = if enabled { INTERRUPT_RECEIVED_DATA } else { 0 };
        self.write(Register::InterruptEnable, value);
    }

    /// Sends one byte, waiting (boundedly) for room in the transmitter.
    pub fn write_byte(self, byte: u8) {
        for _ in 0..TRANSMIT_SPIN_LIMIT {
            if self.read(Register::LineStatus) & LINE_STATUS_TRANSMIT_EMPTY != 0 {
                break;
            }
        }
        self.write(Register::Data, byte);
    }

    /// Sends one byte if the transmitter has room now; never waits.
    pub fn try_write_byte(self, byte: u8) -> bool {
        if self.read(Register::LineStatus) & LINE_STATUS_TRANSMIT_EMPTY == 0 {
            return false;
        }
        self.write(Register::Data, byte);
        true
    }

    /// Receives one byte if one is waiting.
    pub fn try_read_byte(self) -> Option<u8> {
        if self.read(Register::LineStatus) & LINE_STATUS_DATA_READY != 0 {
            Some(self.read(Register::Data))
        } else {
            None
        }
    }

    /// Sends bytes, turning "\n" into "\r\n" for terminals.
    pub fn write_text(self, text: &str) {
        for byte in text.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
    }
}
