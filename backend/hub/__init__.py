"""Stream hubs: own generations, buffer their events, fan them out, resume them."""
