//! 16550 UART driver for the serial ports: COM1 is the console, COM2 the monitor channel.

use super::cpu::{inb, outb};

/// A 16550-compatible serial port at a fixed I/O base.
#[derive(Clone, Copy, Debug)]
pub struct SerialPort {
    base: u16,
}

/// COM1: the text console.
pub const COM1: SerialPort = SerialPort { base: 0x3f8 };
/// COM2: reserved for the binary monitor protocol.
pub const COM2: SerialPort = SerialPort { base: 0x2f8 };

const DATA: u16 = 0;
const INTERRUPT_ENABLE: u16 = 1;
const FIFO_CONTROL: u16 = 2;
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;
const SCRATCH: u16 = 7;

const LINE_STATUS_DATA_READY: u8 = 1 << 0;
const LINE_STATUS_TRANSMIT_EMPTY: u8 = 1 << 5;

/// Bounded wait for the transmitter, so a wedged or absent UART never hangs the kernel.
const TRANSMIT_SPIN_LIMIT: u32 = 100_000;

impl SerialPort {
    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off. Returns false when no UART
    /// answers at this base (the scratch register does not hold a value).
    pub fn init(self) -> bool {
        outb(self.base + SCRATCH, 0x5a);
        if inb(self.base + SCRATCH) != 0x5a {
            return false;
        }
        outb(self.base + INTERRUPT_ENABLE, 0x00);
        outb(self.base + LINE_CONTROL, 0x80); // DLAB on: next two bytes are the divisor
        outb(self.base + DATA, 0x01); // divisor 1 = 115200 baud
        outb(self.base + INTERRUPT_ENABLE, 0x00);
        outb(self.base + LINE_CONTROL, 0x03); // 8 bits, no parity, one stop bit
        outb(self.base + FIFO_CONTROL, 0xc7); // enable + clear FIFOs, 14-byte threshold
        outb(self.base + MODEM_CONTROL, 0x0b); // DTR, RTS, OUT2
        true
    }

    /// Sends one byte, waiting (boundedly) for room in the transmitter.
    pub fn write_byte(self, byte: u8) {
        for _ in 0..TRANSMIT_SPIN_LIMIT {
            if inb(self.base + LINE_STATUS) & LINE_STATUS_TRANSMIT_EMPTY != 0 {
                break;
            }
        }
        outb(self.base + DATA, byte);
    }

    /// Sends one byte if the transmitter has room now; never waits.
    pub fn try_write_byte(self, byte: u8) -> bool {
        if inb(self.base + LINE_STATUS) & LINE_STATUS_TRANSMIT_EMPTY == 0 {
            return false;
        }
        outb(self.base + DATA, byte);
        true
    }

    /// Receives one byte if one is waiting.
    pub fn try_read_byte(self) -> Option<u8> {
        if inb(self.base + LINE_STATUS) & LINE_STATUS_DATA_READY != 0 {
            Some(inb(self.base + DATA))
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
