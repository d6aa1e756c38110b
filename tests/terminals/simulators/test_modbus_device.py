"""The Modbus device simulator, driven over real Modbus TCP on 127.0.0.1 as the host would."""

import asyncio
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from protocols.modbus import (
    INPUT_COUNT,
    MapError,
    clock_write,
    config_writes,
    decode_config_ids,
    decode_inputs,
    enable_write,
    handpay_raised,
    handpay_reset_write,
    meter_delta32,
    status_edges,
)
from terminals.simulators.modbus_device import (
    BAD_EXCEPTION,
    BAD_SILENT,
    BAD_STUCK_CONFIG,
    BAD_WRONG_MAP,
    DEFAULT_SHA256,
    ModbusDevice,
)

UNIT = 3
PACKAGE = {
    "name": "floor-a",
    "version": "1",
    "games": [
        {"theme": "Sevens", "paytable_id": "42", "rtp_bp": 9250, "denoms_cents": [5, 1], "max_bet_cents": 250}
    ],
    "settings": {},
}


def start(device: ModbusDevice):
    port = device.run_in_thread()
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    assert client.connect()
    return client


@pytest.fixture
def device():
    dev = ModbusDevice(unit=UNIT, seed=7, apply_delay=0.05, reset_delay=0.02)
    yield dev
    dev.stop_thread()


@pytest.fixture
def client(device):
    cl = start(device)
    yield cl
    cl.close()


def poll(client):
    response = client.read_input_registers(0, count=INPUT_COUNT, device_id=UNIT)
    assert not response.isError(), response
    return decode_inputs(response.registers)


def write(client, address_values):
    address, values = address_values
    response = client.write_registers(address, values, device_id=UNIT)
    assert not response.isError(), response


def holding(client, address, count):
    response = client.read_holding_registers(address, count=count, device_id=UNIT)
    assert not response.isError(), response
    return response.registers


def wait_for(check, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_one_read_of_inputs_decodes(client):
    reading = poll(client)
    assert reading.map_version == 1
    assert reading.software_sha256 == DEFAULT_SHA256
    assert reading.status_bits == 0
    assert all(value == 0 for value in reading.meters.values())


def test_bills_and_games_move_the_meters(device, client):
    before = poll(client)
    assert device.insert_bill(5000)
    assert device.play(50, bet_cents=10) == 50
    after = poll(client).meters
    assert after["bills_in_cents"] == 5000
    assert after["coin_in_cents"] == 500
    assert after["games_played"] == 50
    assert 0 < after["games_won"] < 50
    assert after["current_credits_cents"] == 5000 - 500 + after["coin_out_cents"]
    assert after == device.meters()
    assert poll(client).event_counter == before.event_counter + 1


def test_play_stops_when_credits_run_out(device, client):
    device.insert_bill(20)
    played = device.play(1000, bet_cents=10)
    assert 2 <= played < 1000
    assert poll(client).meters["current_credits_cents"] < 10


def test_writing_100_disables_and_enables_play(device, client):
    device.insert_bill(1000)
    write(client, enable_write(False))
    reading = poll(client)
    assert reading.disabled and reading.status_bits & 1 << 5
    assert holding(client, 100, 1) == [0]
    assert device.play(5) == 0
    assert not device.insert_bill(500)
    write(client, enable_write(True))
    assert not poll(client).disabled
    assert device.play(5) == 5


def test_config_push_122_follows_120(device, client):
    for address_values in config_writes(PACKAGE, 90_001):
        write(client, address_values)
    assert holding(client, 110, 5) == [1, 0, 250, 42, 9250]
    assert wait_for(lambda: decode_config_ids(holding(client, 120, 4)) == (90_001, 90_001))
    assert device.game_in_force == {"denom_cents": 1, "max_bet_cents": 250, "paytable": 42, "rtp_bp": 9250}


def test_device_refuses_bad_writes(client):
    assert client.write_register(122, 5, device_id=UNIT).exception_code == 2  # read-only in effect
    assert client.write_register(105, 1, device_id=UNIT).exception_code == 2  # reserved
    assert client.write_register(100, 2, device_id=UNIT).exception_code == 3  # not 0/1
    assert client.read_input_registers(0, count=INPUT_COUNT + 1, device_id=UNIT).exception_code == 2
    assert client.read_input_registers(100, count=1, device_id=UNIT).exception_code == 2
    assert client.read_coils(0, count=1, device_id=UNIT).exception_code == 1


def test_handpay_and_reset_from_the_host(device, client):
    first = poll(client)
    device.trigger_handpay(150_000)
    reading = poll(client)
    assert handpay_raised(first.status_bits, reading.status_bits)
    assert reading.handpay_pending_cents == 150_000
    assert device.play(1) == 0
    write(client, handpay_reset_write())
    assert wait_for(lambda: holding(client, 130, 1) == [0])
    reading = poll(client)
    assert not reading.handpay_pending
    assert reading.handpay_pending_cents == 0
    assert reading.meters["jackpot_cents"] == 150_000


def test_a_win_over_the_limit_locks_up_for_a_handpay():
    device = ModbusDevice(unit=1, seed=1, handpay_limit_cents=1)
    own = start(device)
    try:
        device.insert_bill(10_000)
        played = device.play(200, bet_cents=10)
        reading = decode_inputs(own.read_input_registers(0, count=INPUT_COUNT, device_id=1).registers)
        assert reading.handpay_pending and reading.handpay_pending_cents >= 10
        assert reading.meters["games_won"] == 1 and reading.meters["games_played"] == played
        assert reading.meters["coin_out_cents"] == 0
    finally:
        own.close()
        device.stop_thread()


def test_status_edges_from_polls(device, client):
    previous = poll(client).status_bits
    device.open_door()
    device.open_door("cashbox")
    device.tilt()
    device.set_fault()
    now = poll(client).status_bits
    assert status_edges(previous, now) == ["door.main.open", "door.cashbox.open", "tilt", "printer.fault"]
    device.close_door()
    device.close_door("cashbox")
    device.clear_tilt()
    device.set_fault(False)
    assert status_edges(now, poll(client).status_bits) == ["door.main.closed", "door.cashbox.closed"]
    assert poll(client).event_counter == 8


def test_ram_clear_latches_bit_7_until_register_1_is_read(device, client):
    device.insert_bill(1000)
    device.play(3)
    device.ram_clear()
    # Reading only the meters leaves the latch set.
    client.read_input_registers(10, count=14, device_id=UNIT)
    reading = poll(client)
    assert reading.ram_cleared
    assert status_edges(0, reading.status_bits) == ["ram.clear"]
    assert all(value == 0 for value in reading.meters.values())
    assert not poll(client).ram_cleared


def test_meters_roll_over_at_2_32(device, client):
    device.set_meter("coin_in_cents", 2**32 - 5)
    device.insert_bill(100)
    old = poll(client).meters["coin_in_cents"]
    device.play(1, bet_cents=10)
    new = poll(client).meters["coin_in_cents"]
    assert new == 5
    assert meter_delta32(old, new) == 10


def test_clock_write_is_kept(client):
    write(client, clock_write(1_700_000_000))
    high, low = holding(client, 101, 2)
    assert 1_700_000_000 <= high << 16 | low <= 1_700_000_002


def test_bad_device_exception_responses(device, client):
    device.set_bad_mode(BAD_EXCEPTION)
    response = client.read_input_registers(0, count=INPUT_COUNT, device_id=UNIT)
    assert response.isError() and response.exception_code == 4
    device.set_bad_mode(None)
    assert poll(client).map_version == 1


def test_bad_device_silence_times_out(device):
    port = device.run_in_thread()
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=0.2, retries=0)
    try:
        device.set_bad_mode(BAD_SILENT)
        write_back = client.write_registers(100, [0], device_id=UNIT)
        pytest.fail(f"silent device answered: {write_back}")
    except ModbusIOException:
        pass
    device.set_bad_mode(None)
    # The write made while silent was not applied.
    assert not poll(client).disabled
    client.close()


def test_bad_device_wrong_map_version(device, client):
    device.set_bad_mode(BAD_WRONG_MAP)
    response = client.read_input_registers(0, count=INPUT_COUNT, device_id=UNIT)
    with pytest.raises(MapError, match="map version 2"):
        decode_inputs(response.registers)


def test_bad_device_config_never_applies(device, client):
    device.set_bad_mode(BAD_STUCK_CONFIG)
    for address_values in config_writes(PACKAGE, 5):
        write(client, address_values)
    time.sleep(0.15)
    assert decode_config_ids(holding(client, 120, 4)) == (5, 0)


def test_async_start_and_async_client():
    async def scenario():
        device = ModbusDevice(unit=2, seed=3)
        port = await device.start()
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        await client.connect()
        try:
            device.insert_bill(2000)
            device.play(4, bet_cents=25)
            response = await client.read_input_registers(0, count=INPUT_COUNT, device_id=2)
            return decode_inputs(response.registers).meters
        finally:
            client.close()
            await device.stop()

    # A loop of its own in a thread: Playwright's sync API (browser tests) may own this thread's loop.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        meters = pool.submit(asyncio.run, scenario()).result(timeout=30)
    assert meters["games_played"] == 4 and meters["coin_in_cents"] == 100


def test_autoplay_plays_by_itself(device, client):
    device.start_autoplay(games_per_second=40)
    assert wait_for(lambda: poll(client).meters["games_played"] >= 5, timeout=3)
    device.stop_autoplay()
    reading = poll(client)
    assert reading.meters["bills_in_cents"] > 0
    assert reading.event_counter > reading.meters["games_played"]
