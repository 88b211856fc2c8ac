//! The dense form of the blocked IPv4 /24s (`BLOCK_DENSE24_V4`): one byte per /24, a 256-byte
//! chunk per /16, for sets with so many /24s that the hash costs more (`sizing::DENSE24_AT`).
//! A /24 is written by rewriting its chunk; a reader in the kernel sees each byte either old
//! or new, so a /24 listed before and after a write is never seen unlisted in between.

use std::{
    collections::HashMap,
    os::fd::RawFd,
    sync::atomic::{AtomicU8, Ordering},
};

use aya::maps::{Array, MapData, MapError};
use blocker_common::{Dense24Chunk, ListRef, dense24_byte, dense24_slot, dense24_value, map_names};
use ipnet::{IpNet, Ipv4Net};

use super::KernelError;

const NAME: &str = map_names::BLOCK_DENSE24_V4;

/// Chunks per BPF_MAP_UPDATE_BATCH call: 1 MiB of chunks held at a time.
const BATCH: usize = 4096;

/// The array as the sync writes it: the map and its fd (for batch writes).
pub struct Dense24<'m, 'a> {
    map: &'m mut Array<&'a mut MapData, Dense24Chunk>,
    fd: RawFd,
}

fn map_err(source: MapError) -> KernelError {
    KernelError::Map { name: NAME, source }
}

/// The /24 a chunk's byte stands for.
fn net_of(chunk: u32, byte: usize) -> Ipv4Net {
    let slash16 = chunk - 1;
    let addr = std::net::Ipv4Addr::new((slash16 >> 8) as u8, slash16 as u8, byte as u8, 0);
    Ipv4Net::new(addr, 24).expect("24 is a valid IPv4 prefix length")
}

/// Adds every /24 the array holds to `out`.
pub fn read_all(
    map: &Array<&mut MapData, Dense24Chunk>,
    out: &mut HashMap<IpNet, ListRef>,
) -> Result<(), KernelError> {
    for (index, chunk) in map.iter().enumerate() {
        let chunk = chunk.map_err(map_err)?;
        if index == 0 || chunk.iter().all(|&b| b == 0) {
            continue;
        }
        for (byte, &value) in chunk.iter().enumerate() {
            if let Some(value) = dense24_value(value) {
                out.insert(IpNet::V4(net_of(index as u32, byte)), value);
            }
        }
    }
    Ok(())
}

impl<'m, 'a> Dense24<'m, 'a> {
    pub fn of((map, fd): &'m mut (Array<&'a mut MapData, Dense24Chunk>, RawFd)) -> Self {
        Self { map, fd: *fd }
    }

    /// Writes `items` (/24 network address and value), each chunk read back first unless the
    /// array is `known_empty` (a start or a new generation: nothing to keep in the chunk).
    pub fn write(
        &mut self,
        items: Vec<([u8; 4], ListRef)>,
        known_empty: bool,
    ) -> Result<(), KernelError> {
        let bytes = items
            .into_iter()
            .map(|(addr, value)| {
                let byte = dense24_byte(value).ok_or(KernelError::NoDenseForm {
                    net: IpNet::V4(Ipv4Net::new(addr.into(), 24).expect("/24")),
                    list_id: value.list_id,
                })?;
                Ok((addr, byte))
            })
            .collect::<Result<_, KernelError>>()?;
        self.set_bytes(bytes, known_empty)
    }

    /// Clears the bytes of the /24s at `addrs`, a chunk write per /16 touched.
    pub fn clear(&mut self, addrs: impl Iterator<Item = [u8; 4]>) -> Result<(), KernelError> {
        self.set_bytes(addrs.map(|addr| (addr, 0)).collect(), false)
    }

    /// Sets each /24's byte: in place through a mapping of the array, or else by rewriting
    /// its chunk, read back first unless `known_empty`.
    fn set_bytes(
        &mut self,
        mut items: Vec<([u8; 4], u8)>,
        known_empty: bool,
    ) -> Result<(), KernelError> {
        if self.set_mapped(&items) {
            return Ok(());
        }
        items.sort_unstable_by_key(|(addr, _)| *addr);
        let (mut indices, mut chunks) = (Vec::new(), Vec::<Dense24Chunk>::new());
        for (addr, byte) in items {
            let (index, at) = dense24_slot(addr);
            if indices.last() != Some(&index) {
                if indices.len() == BATCH {
                    self.flush(&indices, &chunks)?;
                    indices.clear();
                    chunks.clear();
                }
                let current = match known_empty {
                    true => [0; 256],
                    false => self.map.get(&index, 0).map_err(map_err)?,
                };
                indices.push(index);
                chunks.push(current);
            }
            if let Some(chunk) = chunks.last_mut() {
                chunk[at] = byte;
            }
        }
        self.flush(&indices, &chunks)
    }

    /// Stores each byte in place through mappings of the array (`BPF_F_MMAPABLE`): no chunk
    /// is copied in or out (a million-/24 start wrote 16 MiB of chunks by syscall). Each byte
    /// is one store, so a reader sees it old or new. False when the array cannot be mapped
    /// (one pinned by a release without the flag), leaving the chunk writes to the caller.
    fn set_mapped(&self, items: &[([u8; 4], u8)]) -> bool {
        let total = self.map.len() as usize * size_of::<Dense24Chunk>();
        let at = |addr| {
            let (index, byte) = dense24_slot(addr);
            index as usize * size_of::<Dense24Chunk>() + byte
        };
        let written = super::mapping::for_windows(self.fd, 0..total, |mapping, offset| {
            // SAFETY: the window's bytes, for as long as it is mapped; written only through
            // atomics here and read byte by byte by the programs.
            let bytes = unsafe {
                std::slice::from_raw_parts(mapping.as_ptr().cast::<AtomicU8>(), mapping.len())
            };
            for &(addr, byte) in items {
                if let Some(slot) = at(addr).checked_sub(offset).and_then(|i| bytes.get(i)) {
                    slot.store(byte, Ordering::Relaxed);
                }
            }
        });
        // Everything stored before the sync's next step (the hosts' switch, deletes).
        std::sync::atomic::fence(Ordering::Release);
        written.is_ok()
    }

    /// Clears the byte of the /24 at `addr`.
    pub fn delete(&mut self, addr: [u8; 4]) -> Result<(), KernelError> {
        let (index, at) = dense24_slot(addr);
        let mut chunk = self.map.get(&index, 0).map_err(map_err)?;
        chunk[at] = 0;
        self.map.set(index, chunk, 0).map_err(map_err)
    }

    fn flush(&mut self, indices: &[u32], chunks: &[Dense24Chunk]) -> Result<(), KernelError> {
        if indices.is_empty() {
            return Ok(());
        }
        super::batch::write_array(self.fd, self.map, indices, chunks, NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_bytes_name_their_24s() {
        assert_eq!(net_of(1, 0).to_string(), "0.0.0.0/24");
        let (chunk, byte) = dense24_slot([203, 0, 113, 9]);
        assert_eq!(net_of(chunk, byte).to_string(), "203.0.113.0/24");
        let (chunk, byte) = dense24_slot([255, 255, 255, 255]);
        assert_eq!(net_of(chunk, byte).to_string(), "255.255.255.0/24");
    }
}
