"""Provider simulator: Twilio (SMS, voice), push and print house, played by a virtual city."""

from simulator.app import SIM, SimConfig, Simulator, build_app, simulator_of, start

__all__ = ["SIM", "SimConfig", "Simulator", "build_app", "simulator_of", "start"]
